/**
 * The shapes of HubSpot's answers, as far as the connector reads them (the API client's own types
 * are wider and looser).
 */

export interface HubSpotObject {
  id: string;
  properties: Record<string, string | null>;
  createdAt?: Date | string;
  updatedAt?: Date | string;
  archived?: boolean;
  archivedAt?: Date | string;
}
export interface ListPage {
  results: HubSpotObject[];
  paging?: { next?: { after?: string } };
}
export interface SearchPage {
  total: number;
  results: HubSpotObject[];
  paging?: { next?: { after?: string } };
}
export interface SearchBody {
  filterGroups: Array<{ filters: Array<{ propertyName: string; operator: string; value?: string; highValue?: string; values?: string[] }> }>;
  sorts: Array<{ propertyName: string; direction: "ASCENDING" | "DESCENDING" }>;
  properties: string[];
  limit: number;
  after?: string;
}
export interface PropertyDef {
  name: string;
  label?: string;
  type: string;
  fieldType?: string;
  options?: Array<{ label: string; value: string }>;
  referencedObjectType?: string;
  calculated?: boolean;
  archived?: boolean;
}
export interface OwnerDef {
  id: string;
  email?: string;
  firstName?: string;
  lastName?: string;
  userId?: number | null;
  userIdIncludingInactive?: number | null;
  archived?: boolean;
}
export interface SchemaDef {
  id?: string;
  objectTypeId: string;
  name: string;
  fullyQualifiedName?: string;
  primaryDisplayProperty?: string;
  labels?: { singular?: string; plural?: string };
}
export interface PipelineDef {
  id: string;
  label: string;
  stages: Array<{ id: string; label: string }>;
}
export interface AccountInfo {
  portalId?: number;
  timeZone?: string;
  companyCurrency?: string;
  additionalCurrencies?: string[];
}
export interface AssociationTarget {
  id: string;
  types: Array<{ category: string; typeId: number; label: string | null }>;
}
export interface AssociationBatch {
  results?: Array<{
    to?: Array<{ toObjectId: number | string; associationTypes?: Array<{ category?: string; typeId?: number; label?: string | null }> }>;
    paging?: { next?: { after?: string } };
  }>;
  errors?: Array<{ category?: string; subCategory?: unknown; message?: string }>;
}
