"""The FOCUS 1.3 Cost and Usage column rules, checked on a CSV: the suite's FOCUS validator.

The ``focus-validator`` package runs too (tests/test_reports_focus_validator.py, in a
Python 3.12 venv of its own), but offline it knows only the FOCUS 1.2 rules it ships (the
1.3 rules are a download). This module is the 1.3 check.

This module encodes, from the FOCUS 1.3 specification's column pages and its
machine-readable requirements model, what can be checked on a file: every
Mandatory column present; every other column a FOCUS column or ``x_``-prefixed;
nullability; data types and formats (NumericFormat, DateTimeFormat,
CurrencyFormat, KeyValueFormat); allowed values; and the cross-column rules of
the columns a usage export carries. :func:`check` returns the violations as
``line N: Column: problem``; an empty list means the file passes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

M, C, R = "Mandatory", "Conditional", "Recommended"

SERVICE_SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    "AI and Machine Learning": ("AI Platforms", "Bots", "Generative AI", "Machine Learning",
                                "Natural Language Processing"),
    "Analytics": ("Analytics Platforms", "Business Intelligence", "Data Processing", "Search",
                  "Streaming Analytics"),
    "Business Applications": ("Productivity and Collaboration",),
    "Compute": ("Containers", "End User Computing", "Quantum Compute", "Serverless Compute",
                "Virtual Machines"),
    "Databases": ("Caching", "Data Warehouses", "Ledger Databases", "NoSQL Databases",
                  "Relational Databases", "Time Series Databases"),
    "Developer Tools": ("Developer Platforms", "Continuous Integration and Deployment",
                        "Development Environments", "Source Code Management",
                        "Quality Assurance"),
    "Identity": ("Identity and Access Management",),
    "Integration": ("API Management", "Messaging", "Workflow Orchestration"),
    "Internet of Things": ("IoT Analytics", "IoT Platforms"),
    "Management and Governance": ("Architecture", "Compliance", "Cost Management",
                                  "Data Governance", "Disaster Recovery", "Endpoint Management",
                                  "Observability", "Support"),
    "Media": ("Content Creation", "Gaming", "Media Streaming", "Mixed Reality"),
    "Migration": ("Data Migration", "Resource Migration"),
    "Mobile": (),
    "Multicloud": ("Multicloud Integration",),
    "Networking": ("Application Networking", "Content Delivery", "Network Connectivity",
                   "Network Infrastructure", "Network Routing", "Network Security"),
    "Security": ("Secret Management", "Security Posture Management",
                 "Threat Detection and Response"),
    "Storage": ("Backup Storage", "Block Storage", "File Storage", "Object Storage",
                "Storage Platforms"),
    "Web": ("Application Platforms",),
    "Other": (),
}
PARENT = {sub: cat for cat, subs in SERVICE_SUBCATEGORIES.items()
          for sub in (*subs, f"Other ({cat})")}

#: column -> (feature level, allows nulls, data type, allowed values or None)
COLUMNS: dict[str, tuple[str, bool, str, frozenset[str] | None]] = {
    "AllocatedMethodDetails": (C, True, "keyvalue", None),
    "AllocatedMethodId": (C, True, "string", None),
    "AllocatedResourceId": (C, True, "string", None),
    "AllocatedResourceName": (C, True, "string", None),
    "AllocatedTags": (C, True, "keyvalue", None),
    "AvailabilityZone": (R, True, "string", None),
    "BilledCost": (M, False, "decimal", None),
    "BillingAccountId": (M, False, "string", None),
    "BillingAccountName": (M, True, "string", None),
    "BillingAccountType": (C, True, "string", None),
    "BillingCurrency": (M, False, "currency", None),
    "BillingPeriodEnd": (M, False, "datetime", None),
    "BillingPeriodStart": (M, False, "datetime", None),
    "CapacityReservationId": (C, True, "string", None),
    "CapacityReservationStatus": (C, True, "string", frozenset({"Used", "Unused"})),
    "ChargeCategory": (M, False, "string", frozenset({"Usage", "Purchase", "Tax", "Credit",
                                                      "Adjustment"})),
    "ChargeClass": (M, True, "string", frozenset({"Correction"})),
    "ChargeDescription": (M, True, "string", None),
    "ChargeFrequency": (R, False, "string", frozenset({"One-Time", "Recurring",
                                                       "Usage-Based"})),
    "ChargePeriodEnd": (M, False, "datetime", None),
    "ChargePeriodStart": (M, False, "datetime", None),
    "CommitmentDiscountCategory": (C, True, "string", frozenset({"Spend", "Usage"})),
    "CommitmentDiscountId": (C, True, "string", None),
    "CommitmentDiscountName": (C, True, "string", None),
    "CommitmentDiscountQuantity": (C, True, "decimal", None),
    "CommitmentDiscountStatus": (C, True, "string", frozenset({"Used", "Unused"})),
    "CommitmentDiscountType": (C, True, "string", None),
    "CommitmentDiscountUnit": (C, True, "string", None),
    "ConsumedQuantity": (C, True, "decimal", None),
    "ConsumedUnit": (C, True, "string", None),
    "ContractApplied": (C, True, "keyvalue", None),
    "ContractedCost": (M, False, "decimal", None),
    "ContractedUnitPrice": (C, True, "decimal", None),
    "EffectiveCost": (M, False, "decimal", None),
    "HostProviderName": (M, False, "string", None),
    "InvoiceId": (R, True, "string", None),
    "InvoiceIssuerName": (M, False, "string", None),
    "ListCost": (M, False, "decimal", None),
    "ListUnitPrice": (C, True, "decimal", None),
    "PricingCategory": (C, True, "string", frozenset({"Standard", "Dynamic", "Committed",
                                                      "Other"})),
    "PricingCurrency": (C, True, "currency", None),
    "PricingCurrencyContractedUnitPrice": (C, True, "decimal", None),
    "PricingCurrencyEffectiveCost": (C, True, "decimal", None),
    "PricingCurrencyListUnitPrice": (C, True, "decimal", None),
    "PricingQuantity": (M, True, "decimal", None),
    "PricingUnit": (M, True, "string", None),
    "ProviderName": (M, False, "string", None),  # deprecated in 1.3, still required
    "PublisherName": (M, False, "string", None),  # deprecated in 1.3, still required
    "RegionId": (C, True, "string", None),
    "RegionName": (C, True, "string", None),
    "ResourceId": (C, True, "string", None),
    "ResourceName": (C, True, "string", None),
    "ResourceType": (C, True, "string", None),
    "ServiceCategory": (M, False, "string", frozenset(SERVICE_SUBCATEGORIES)),
    "ServiceName": (M, False, "string", None),
    "ServiceProviderName": (M, False, "string", None),  # 1.3
    "ServiceSubcategory": (R, False, "string", frozenset(PARENT)),
    "SkuId": (C, True, "string", None),
    "SkuMeter": (C, True, "string", None),
    "SkuPriceDetails": (C, True, "keyvalue", None),
    "SkuPriceId": (C, True, "string", None),
    "SubAccountId": (C, True, "string", None),
    "SubAccountName": (C, True, "string", None),
    "SubAccountType": (C, True, "string", None),
    "Tags": (C, True, "keyvalue", None),
}

_DECIMAL = re.compile(r"^-?\d+(\.\d+)?([eE]-?\d+)?$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _type_problem(kind: str, value: str) -> str | None:
    if kind == "decimal" and not _DECIMAL.match(value):
        return f"{value!r} is not a NumericFormat decimal"
    if kind == "datetime" and not _DATETIME.match(value):
        return f"{value!r} is not a DateTimeFormat UTC time (YYYY-MM-DDTHH:mm:ssZ)"
    if kind == "currency" and not _CURRENCY.match(value):
        return f"{value!r} is not an ISO 4217 currency code"
    if kind == "keyvalue":
        try:
            obj = json.loads(value, object_pairs_hook=_no_duplicate_keys)
        except ValueError as exc:
            return f"not a KeyValueFormat JSON object ({exc})"
        if not isinstance(obj, dict):
            return "not a KeyValueFormat JSON object"
        if any(isinstance(v, (dict, list)) for v in obj.values()):
            return "KeyValueFormat values must not be objects or arrays"
    if kind == "string" and value.strip() == "":
        return "a blank string instead of null"
    return None


Rule = Callable[[dict[str, str | None]], str | None]


def _rules(header: set[str]) -> list[tuple[str, Rule]]:
    """Cross-column rules for the columns present (None: the row satisfies the rule)."""

    def usage_or_purchase(r: dict[str, str | None]) -> bool:
        return r.get("ChargeCategory") in ("Usage", "Purchase") and r.get("ChargeClass") is None

    rules: list[tuple[str, Rule]] = [
        ("ChargePeriodEnd", lambda r: None if (r["ChargePeriodStart"] or "") < (
            r["ChargePeriodEnd"] or "") else "must be after ChargePeriodStart"),
        ("BillingPeriodEnd", lambda r: None if (r["BillingPeriodStart"] or "") < (
            r["BillingPeriodEnd"] or "") else "must be after BillingPeriodStart"),
        ("ChargeFrequency", lambda r: "must not be Usage-Based for a Purchase" if (
            r.get("ChargeCategory") == "Purchase" and r.get("ChargeFrequency") == "Usage-Based")
         else None),
        ("PricingQuantity", lambda r: "must not be null for Usage / Purchase charges" if (
            usage_or_purchase(r) and r.get("PricingQuantity") is None) else None),
        ("PricingUnit", lambda r: "must be null exactly when PricingQuantity is" if (
            (r.get("PricingUnit") is None) != (r.get("PricingQuantity") is None)) else None),
    ]
    if "ConsumedQuantity" in header:
        rules += [
            ("ConsumedQuantity", lambda r: "must not be null for a Usage charge" if (
                r.get("ChargeCategory") == "Usage" and r.get("ChargeClass") is None
                and r.get("ConsumedQuantity") is None) else None),
            ("ConsumedQuantity", lambda r: "must be null when ChargeCategory is not Usage" if (
                r.get("ChargeCategory") != "Usage" and r.get("ConsumedQuantity") is not None)
             else None),
            ("ConsumedUnit", lambda r: "must be null exactly when ConsumedQuantity is" if (
                (r.get("ConsumedUnit") is None) != (r.get("ConsumedQuantity") is None))
             else None),
        ]
    if "SkuId" in header:
        rules.append(("SkuId", lambda r: "must not be null for Usage / Purchase charges" if (
            usage_or_purchase(r) and r.get("SkuId") is None) else None))
    if "SkuMeter" in header:
        rules.append(("SkuMeter", lambda r: "must be null when SkuId is null" if (
            r.get("SkuId") is None and r.get("SkuMeter") is not None) else None))
    if "PricingCategory" in header:
        rules.append(("PricingCategory", lambda r: "must not be null for Usage / Purchase "
                      "charges" if usage_or_purchase(r) and r.get("PricingCategory") is None
                      else None))
    if "ResourceType" in header:
        rules.append(("ResourceType", lambda r: "must be null exactly when ResourceId is" if (
            (r.get("ResourceType") is None) != (r.get("ResourceId") is None)) else None))
    if "ResourceName" in header:
        rules.append(("ResourceName", lambda r: "must be null when ResourceId is null" if (
            r.get("ResourceId") is None and r.get("ResourceName") is not None) else None))
    if "ServiceSubcategory" in header:
        rules.append(("ServiceSubcategory", lambda r: (
            f"{r['ServiceSubcategory']!r} is not a subcategory of {r['ServiceCategory']!r}")
            if r.get("ServiceSubcategory") in PARENT and PARENT[
                r["ServiceSubcategory"] or ""] != r.get("ServiceCategory") else None))
    for unit_price, cost in (("ListUnitPrice", "ListCost"),
                             ("ContractedUnitPrice", "ContractedCost")):
        if unit_price in header:
            def product(r: dict[str, str | None], u: str = unit_price,
                        c: str = cost) -> str | None:
                if r.get(u) is None or r.get("PricingQuantity") is None or r.get("ChargeClass"):
                    return None
                if Decimal(r[u] or 0) * Decimal(r["PricingQuantity"] or 0) != Decimal(r[c] or 0):
                    return f"{u} x PricingQuantity must equal {c}"
                return None
            rules.append((cost, product))
    return rules


def check(text: str) -> list[str]:
    """Every FOCUS 1.3 violation of a Cost and Usage CSV (empty: the file passes)."""
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    problems = [f"line 1: {name}: a Mandatory column is missing" for name, (level, *_) in
                COLUMNS.items() if level == M and name not in header]
    problems += [f"line 1: {name}: not a FOCUS column and not prefixed x_" for name in header
                 if name not in COLUMNS and not name.startswith("x_")]
    first_custom = next((i for i, n in enumerate(header) if n.startswith("x_")), len(header))
    if any(n in COLUMNS for n in header[first_custom:]):
        problems.append("line 1: custom x_ columns must come after every FOCUS column")
    rules = _rules(set(header))
    categories: dict[str, set[str]] = defaultdict(set)
    for row in reader:
        line = reader.line_num
        values: dict[str, str | None] = {k: (v if v != "" else None) for k, v in row.items()}
        for name, value in values.items():
            spec = COLUMNS.get(name)
            if spec is None:
                continue
            _, nullable, kind, allowed = spec
            if value is None:
                if not nullable:
                    problems.append(f"line {line}: {name}: must not be null")
                continue
            problem = _type_problem(kind, value)
            if problem is None and allowed is not None and value not in allowed:
                problem = f"{value!r} is not an allowed value"
            if problem:
                problems.append(f"line {line}: {name}: {problem}")
        for name, rule in rules:
            try:
                problem = rule(values)
            except (KeyError, ArithmeticError, ValueError):
                problem = "cannot be checked (missing or malformed values)"
            if problem:
                problems.append(f"line {line}: {name}: {problem}")
        if values.get("ServiceName") and values.get("ServiceCategory"):
            categories[values["ServiceName"] or ""].add(values["ServiceCategory"] or "")
    problems += [f"ServiceName {name!r} has more than one ServiceCategory: {sorted(cats)}"
                 for name, cats in categories.items() if len(cats) > 1]
    return problems
