/**
 * Tables configured without `fields`: the mapper takes each field's default Qobra type from the
 * plugin whose type prefix the raw type carries (Salesforce has a table; PostgreSQL and HubSpot none).
 */
import { describe, expect, it } from "vitest";
import { effectiveFields } from "../../consumers/mapping/default-fields.ts";

describe("effectiveFields", () => {
  it("keeps configured fields as they are", () => {
    const configured = { Amount: { type: "number" as const } };
    expect(effectiveFields(configured, { Amount: "sf:currency", Name: "sf:string" })).toBe(configured);
  });

  it("maps Salesforce fields by their type, users by their __id companion, amounts with the record's currency", () => {
    expect(
      effectiveFields(
        {},
        {
          Amount: "sf:currency",
          CurrencyIsoCode: "sf:picklist",
          Probability: "sf:percent",
          CloseDate: "sf:date",
          OwnerId: "sf:reference",
          OwnerId__id: "sf:reference",
          AccountId: "sf:reference",
          AccountId__type: "sf:sobjecttype",
          IsWon: "sf:boolean",
          Tags__c: "sf:multipicklist",
          Opens__c: "sf:time",
          Secret__c: "sf:encryptedstring",
        },
      ),
    ).toEqual({
      Amount: { type: "amount", currencyColumn: "CurrencyIsoCode" },
      CurrencyIsoCode: { type: "picklist" },
      Probability: { type: "percentage" },
      CloseDate: { type: "date" },
      OwnerId: { type: "user" },
      AccountId: { type: "object" },
      IsWon: { type: "bool" },
      Tags__c: { type: "multipicklist" },
    });
  });

  it("maps nothing by default for sources without the hook", () => {
    expect(effectiveFields({}, { amount: "pg:numeric", name: "pg:text", dealname: "hs:string" })).toEqual({});
  });
});
