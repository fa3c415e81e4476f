"""Deterministic, realistic account data, generated column-wise and lazily per collection.

``AccountData(products=N, seed=S, ...)`` describes a garden-supply wholesaler. Nothing is
generated until a collection is first asked for; each collection draws from its own random
stream (``numpy.random.default_rng([seed, stream])``), so the data does not depend on the
order in which collections are read. Large collections are built with numpy, one column at a
time; nested lists are child tables in CSR form (see :mod:`sandbox.columns`).

Dates are spread over the two years before ``anchor`` (default :data:`DEFAULT_ANCHOR`), so a
given ``(products, seed, anchor)`` always yields the same bytes on the wire.

Stock entries (``inventoryitem``) follow Finale's documented shape: no ``productId``; on-hand
entries per product and sub-location, plus on-order and reserved entries derived from the
committed purchase and sales orders as generated (see :meth:`AccountData._inventory`).

About 1.5% of products and parties, and a smaller share of stock entries and order lines, are
deliberately dirty: blank, null, duplicate, padded or non-ASCII names, ``"--"`` or null in
numeric fields, negative or absurd (``1e12``) quantities and costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np

from sandbox import timefmt, words
from sandbox.columns import (
    CategoricalColumn,
    ChildTable,
    ComputedColumn,
    DateColumn,
    FloatColumn,
    NestedColumn,
    ObjectColumn,
    Table,
)

DEFAULT_ANCHOR = "2026-10-01T00:00:00"
"""Every generated date lies before this instant; ``lastUpdatedDate`` spans the 2 years before."""

COLLECTIONS = ("facility", "partygroup", "product", "inventoryitem", "order")

# Random streams: one per collection so collections are independent of reading order.
_STREAMS = {name: number for number, name in enumerate(COLLECTIONS, start=1)}

DAY = timefmt.DAY
DIRTY_SHARE = 0.015
NUMERIC_URL_SHARE = 0.10
WEIGHT_SHARE = 0.05
"""Share of products sold by weight or volume: their on-hand quantities are fractional."""
_WEIGHT_STREAM = len(COLLECTIONS) + 1

ORDER_ACTIONS = {
    # action -> statuses in which it is valid
    "lock": ("ORDER_CREATED",),
    "complete": ("ORDER_LOCKED",),
    "cancel": ("ORDER_CREATED", "ORDER_LOCKED"),
    "edit": ("ORDER_CREATED", "ORDER_LOCKED"),
}
ORDER_STATUSES = ("ORDER_CREATED", "ORDER_LOCKED", "ORDER_COMPLETED", "ORDER_CANCELLED")
ORDER_TYPES = ("PURCHASE_ORDER", "SALES_ORDER")


def _rng(seed: int, collection: str) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[collection]])


def _csr(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For per-parent ``counts``: (starts, parent of each child, position within parent)."""
    counts = counts.astype(np.int64)
    starts = np.cumsum(counts) - counts
    parent = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    pos = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
    return starts, parent, pos


def _counts(rng: np.random.Generator, n: int, probabilities: list[float]) -> np.ndarray:
    return rng.choice(len(probabilities), size=n, p=probabilities).astype(np.int32)


def _dates_between(rng: np.random.Generator, low: np.ndarray | int, high: int, n: int):
    low = np.asarray(low, dtype=np.int64)
    return low + (rng.random(n) * (high - low)).astype(np.int64)


@lru_cache(maxsize=1)
def _five_digit_strings() -> list[str]:
    return [f"{i:05d}" for i in range(100_000)]


@dataclass
class FacilityInfo:
    """What other collections need from the facilities."""

    warehouse_urls: list[str]
    sub_urls: list[str]


@dataclass
class PartyInfo:
    """What other collections need from the party groups."""

    supplier_urls: list[str]
    supplier_ids: list[str]
    customer_ids: list[str]


@dataclass
class OrderInfo:
    """What the stock entries need from the orders, as generated (copies: later writes to the
    order table do not change them, so stock does not depend on what was changed before it
    was generated)."""

    urls: list[str]
    order_type: np.ndarray  # index into ORDER_TYPES
    status: np.ndarray  # index into ORDER_STATUSES
    location: np.ndarray  # sub-location index: a purchase's destination, a sale's origin
    line_order: np.ndarray  # per order line: its order
    line_product: np.ndarray  # per order line: its product row
    line_quantity: np.ndarray  # per order line: its quantity (dirty lines are negative)


@dataclass
class InventoryInfo:
    """Generated stock entry -> product row (entries of one product are contiguous).

    Only the generated entries are described (``len(product)`` of them, first in the table);
    records injected later through the control API are not part of the stock ground truth.
    """

    product: np.ndarray
    starts: np.ndarray
    counts: np.ndarray


class AccountData:
    """The lazily generated collections of one sandbox account.

    Args:
        products: number of products (the other collections scale with it).
        seed: random seed; the same seed always gives the same data.
        account: the account path component used in every URL.
        anchor: ``YYYY-MM-DDTHH:MM:SS``; all generated dates lie before it.
    """

    def __init__(
        self, *, products: int, seed: int, account: str, anchor: str = DEFAULT_ANCHOR
    ) -> None:
        if products < 1:
            raise ValueError("products must be at least 1")
        self.products = products
        self.seed = seed
        self.account = account
        self.anchor = timefmt.to_seconds(datetime.fromisoformat(anchor))
        self.api = f"/{account}/api"
        self.timings: dict[str, float] = {}
        self._tables: dict[str, Table] = {}
        self.facility_info: FacilityInfo | None = None
        self.party_info: PartyInfo | None = None
        self.inventory_info: InventoryInfo | None = None
        self.order_info: OrderInfo | None = None
        self._by_weight: np.ndarray | None = None
        self._order_lines: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # Costs as generated, before dirt and later edits: orders derive their prices from
        # these, so they do not depend on what was changed before they were generated.
        self.product_cost: np.ndarray | None = None

    def table(self, name: str) -> Table:
        """The table of collection ``name``, generated on first use.

        Raises:
            KeyError: for an unknown collection.
        """
        table = self._tables.get(name)
        if table is not None:
            return table
        builders: dict[str, Callable[[], Table]] = {
            "facility": self._facilities,
            "partygroup": self._parties,
            "product": self._products,
            "inventoryitem": self._inventory,
            "order": self._orders,
        }
        build = builders[name]
        before = set(self._tables)
        started = time.perf_counter()
        table = build()
        # Dependencies built inside ``build`` record their own time; keep this one net of them.
        nested = sum(self.timings[dep] for dep in set(self._tables) - before)
        self.timings[name] = round(time.perf_counter() - started - nested, 4)
        self._tables[name] = table
        return table

    def is_generated(self, name: str) -> bool:
        """Whether collection ``name`` exists in memory yet."""
        return name in self._tables

    # -- facilities ------------------------------------------------------------------------

    def _facilities(self) -> Table:
        rng = _rng(self.seed, "facility")
        n_warehouses = 3 if self.products < 100_000 else 5
        ids: list[str] = []
        names: list[str] = []
        parents: list[str | None] = []
        types: list[str] = []
        statuses: list[str] = []
        warehouse_urls: list[str] = []
        sub_urls: list[str] = []
        next_id = 10_000
        for w in range(n_warehouses):
            wid = str(next_id)
            next_id += 1
            wurl = f"{self.api}/facility/{wid}"
            ids.append(wid)
            names.append(words.WAREHOUSES[w])
            parents.append(None)
            types.append("WAREHOUSE")
            statuses.append("FACILITY_ACTIVE")
            warehouse_urls.append(wurl)
            n_sub = int(rng.integers(4, 9))
            for sub_name in rng.choice(words.SUB_LOCATIONS, size=n_sub, replace=False).tolist():
                sid = str(next_id)
                next_id += 1
                ids.append(sid)
                # Sub-location names repeat across warehouses ("Receiving"), as in real accounts.
                names.append(sub_name)
                parents.append(wurl)
                types.append("LOCATION")
                statuses.append("FACILITY_ACTIVE")
                sub_urls.append(f"{self.api}/facility/{sid}")
        # One retired location, still referenced by old stock rows.
        statuses[-1] = "FACILITY_INACTIVE"
        n = len(ids)
        updated = _dates_between(rng, self.anchor - 730 * DAY, self.anchor, n)
        self.facility_info = FacilityInfo(warehouse_urls, sub_urls)
        return Table(
            "facility",
            {
                "facilityId": ObjectColumn(ids),
                "facilityUrl": ObjectColumn([f"{self.api}/facility/{i}" for i in ids]),
                "facilityName": ObjectColumn(names),
                "parentFacilityUrl": ObjectColumn(parents),
                "statusId": CategoricalColumn(
                    np.array([0 if s == "FACILITY_ACTIVE" else 1 for s in statuses]),
                    ["FACILITY_ACTIVE", "FACILITY_INACTIVE"],
                ),
                "facilityTypeId": ObjectColumn(types),
                "lastUpdatedDate": DateColumn(updated),
            },
            key_field="facilityId",
            url_field="facilityUrl",
        )

    def _facility_info(self) -> FacilityInfo:
        self.table("facility")
        assert self.facility_info is not None
        return self.facility_info

    # -- party groups ----------------------------------------------------------------------

    def _parties(self) -> Table:
        rng = _rng(self.seed, "partygroup")
        n_sup = max(8, self.products // 200)
        n_cus = max(10, self.products // 100)
        kinds = np.array([0] * n_sup + [1] * n_cus)
        rng.shuffle(kinds)
        ids = ["PRIMARY"] + [str(100_000 + k) for k in range(len(words.CARRIERS) + len(kinds))]
        names: list[str | None] = [f"{self.account.title()} Garden Supply Inc."]
        roles: list[list[str]] = [[]]
        names += words.CARRIERS
        roles += [["CARRIER"] for _ in words.CARRIERS]
        firsts = rng.integers(0, len(words.COMPANY_FIRST), len(kinds)).tolist()
        lasts = rng.integers(0, len(words.SUPPLIER_LAST), len(kinds)).tolist()
        both = (rng.random(len(kinds)) < 0.1).tolist()
        for kind, first, last, is_both in zip(kinds.tolist(), firsts, lasts, both, strict=True):
            if kind == 0:
                names.append(f"{words.COMPANY_FIRST[first]} {words.SUPPLIER_LAST[last]}")
                roles.append(["SUPPLIER", "CUSTOMER"] if is_both else ["SUPPLIER"])
            else:
                names.append(f"{words.COMPANY_FIRST[first]} {words.CUSTOMER_LAST[last]}")
                roles.append(["CUSTOMER"])
        n = len(ids)
        statuses: list[str | None] = [
            "PARTY_DISABLED" if r < 0.05 else "PARTY_ENABLED" for r in rng.random(n).tolist()
        ]
        statuses[0] = "PARTY_ENABLED"
        city = rng.integers(0, len(words.CITIES), n).tolist()
        street = rng.integers(0, len(words.STREETS), n).tolist()
        number = rng.integers(10, 9999, n).tolist()
        n_mech = rng.integers(1, 4, n).tolist()
        mechs: list[list[dict[str, Any]]] = []
        for i in range(n):
            slug = "".join(ch for ch in (names[i] or "").lower() if ch.isalnum())[:16] or "party"
            email = {
                "contactMechTypeId": "EMAIL_ADDRESS",
                "infoString": f"orders@{slug}{i}.example.com",
                "address1": None,
                "city": None,
                "stateProvinceGeoId": None,
                "postalCode": None,
                "countryGeoId": None,
            }
            phone = {**email, "contactMechTypeId": "TELECOM_NUMBER"}
            phone["infoString"] = f"+1 555-{(i * 37) % 10_000:04d}"
            c_name, c_state, c_zip = words.CITIES[city[i]]
            postal = {
                "contactMechTypeId": "POSTAL_ADDRESS",
                "infoString": None,
                "address1": f"{number[i]} {words.STREETS[street[i]]}",
                "city": c_name,
                "stateProvinceGeoId": c_state,
                "postalCode": c_zip,
                "countryGeoId": "USA",
            }
            mechs.append([email, phone, postal][: n_mech[i]])
        # Dirty parties (never PRIMARY): blank, duplicate or non-ASCII names, null status,
        # an unusable email.
        dirty = rng.choice(np.arange(1, n), size=max(1, round(n * DIRTY_SHARE)), replace=False)
        for k, row in enumerate(sorted(dirty.tolist())):
            kind = k % 5
            if kind == 0:
                names[row] = ""
            elif kind == 1:
                names[row] = names[row - 1]
            elif kind == 2:
                statuses[row] = None
            elif kind == 3:
                names[row] = words.UNICODE_PARTIES[k % len(words.UNICODE_PARTIES)]
            else:
                mechs[row] = [{**mechs[row][0], "infoString": "n/a"}]
        updated = _dates_between(rng, self.anchor - 730 * DAY, self.anchor, n)
        urls = [f"{self.api}/partygroup/{i}" for i in ids]
        self.party_info = PartyInfo(
            supplier_urls=[u for u, r in zip(urls, roles, strict=True) if "SUPPLIER" in r],
            supplier_ids=[i for i, r in zip(ids, roles, strict=True) if "SUPPLIER" in r],
            customer_ids=[i for i, r in zip(ids, roles, strict=True) if r == ["CUSTOMER"]],
        )
        return Table(
            "partygroup",
            {
                "partyId": ObjectColumn(ids),
                "partyUrl": ObjectColumn(urls),
                "groupName": ObjectColumn(names),
                "roleTypeIdList": ObjectColumn(roles, filterable=False),
                "statusId": ObjectColumn(statuses),
                "contactMechList": ObjectColumn(mechs, filterable=False),
                "lastUpdatedDate": DateColumn(updated),
            },
            key_field="partyId",
            url_field="partyUrl",
        )

    def _party_info(self) -> PartyInfo:
        self.table("partygroup")
        assert self.party_info is not None
        return self.party_info

    def _order_info(self) -> OrderInfo:
        self.table("order")
        assert self.order_info is not None
        return self.order_info

    # -- products --------------------------------------------------------------------------

    def _products(self) -> Table:
        fac = self._facility_info()
        parties = self._party_info()
        rng = _rng(self.seed, "product")
        n = self.products
        cats = words.CATEGORIES
        cat = rng.integers(0, len(cats), n)
        noun_counts = np.array([len(c[2]) for c in cats])
        noun_base = np.cumsum(noun_counts) - noun_counts
        noun = noun_base[cat] + (rng.random(n) * noun_counts[cat]).astype(np.int64)
        n_adj, n_size, n_var = len(words.ADJECTIVES), len(words.SIZES), len(words.VARIANTS)
        name_code = (
            (noun * n_adj + rng.integers(0, n_adj, n)) * n_size + rng.integers(0, n_size, n)
        ) * n_var + rng.integers(0, n_var, n)
        all_nouns = [noun for c in cats for noun in c[2]]
        codes, name_idx = np.unique(name_code, return_inverse=True)
        name_cats: list[Any] = []
        for code in codes.tolist():
            code, var = divmod(code, n_var)
            code, size = divmod(code, n_size)
            nn, adj = divmod(code, n_adj)
            parts = [words.ADJECTIVES[adj], all_nouns[nn], words.SIZES[size], words.VARIANTS[var]]
            name_cats.append(" ".join(p for p in parts if p))
        width = max(6, len(str(n)))
        prefixes = [c[1] for c in cats]
        id_format = f"%s-%0{width}d"  # %-formatting is twice as fast as a nested f-string
        product_ids = [id_format % (prefixes[c], i) for i, c in enumerate(cat.tolist(), start=1)]
        # About 10% of products have a numeric URL, as products created through some Finale
        # screens do; their URL cannot be built from the SKU.
        numeric = rng.random(n) < NUMERIC_URL_SHARE
        numeric_no = (10_000 + np.cumsum(numeric) - 1).tolist()
        base = f"{self.api}/product/"
        product_urls = [
            base + (str(num) if is_num else pid)
            for pid, is_num, num in zip(product_ids, numeric.tolist(), numeric_no, strict=True)
        ]
        cost = np.round(np.exp(rng.normal(np.log(1500), 0.9, n)).clip(50, 500_000)) / 100
        status = (rng.random(n) < 0.08).astype(np.int32)
        created = np.sort(_dates_between(rng, self.anchor - 1095 * DAY, self.anchor - 30 * DAY, n))
        lowest = np.maximum(created, self.anchor - 730 * DAY)
        updated = _dates_between(rng, lowest, self.anchor, n)

        names = CategoricalColumn(name_idx, name_cats)
        statuses = CategoricalColumn(status, ["PRODUCT_ACTIVE", "PRODUCT_INACTIVE"])
        categories = CategoricalColumn(cat, [c[0] for c in cats])
        self.product_cost = cost
        cost_col = FloatColumn(cost.copy())
        self._dirty_products(rng, names, statuses, categories, cost_col)

        table = Table(
            "product",
            {
                "productId": ObjectColumn(product_ids),
                "productUrl": ObjectColumn(product_urls),
                "internalName": names,
                "statusId": statuses,
                "userCategory": categories,
                "createdDate": DateColumn(created),
                "lastUpdatedDate": DateColumn(updated),
                "cost": cost_col,
                "priceList": self._price_list(rng, cost),
                "supplierList": self._supplier_list(rng, cost, parties),
                "reorderGuidelineList": self._reorder_guidelines(rng, n, fac),
                "userFieldDataList": self._user_fields(rng, n),
            },
            key_field="productId",
            url_field="productUrl",
        )
        return table

    def _dirty_products(
        self,
        rng: np.random.Generator,
        names: CategoricalColumn,
        statuses: CategoricalColumn,
        categories: CategoricalColumn,
        cost: FloatColumn,
    ) -> None:
        n = len(names)
        count = max(1, round(n * DIRTY_SHARE)) if n >= 20 else 0
        rows = np.sort(rng.choice(n, size=count, replace=False)).tolist()
        for k, row in enumerate(rows):
            kind = k % 11
            if kind == 0:
                names.set(row, "")
            elif kind == 1 and row > 0:
                names.set(row, names.get(row - 1))
            elif kind == 2:
                names.set(row, None)
            elif kind == 3:
                names.set(row, words.UNICODE_NAMES[k % len(words.UNICODE_NAMES)])
            elif kind == 4:
                cost.set(row, "--")
            elif kind == 5:
                cost.set(row, None)
            elif kind == 6:
                cost.set(row, -abs(float(cost.values[row])))
            elif kind == 7:
                cost.set(row, 1e12)
            elif kind == 8:
                statuses.set(row, None)
            elif kind == 9:
                categories.set(row, None)
            else:
                names.set(row, f"  {names.get(row)}  ")

    def _price_list(self, rng: np.random.Generator, cost: np.ndarray) -> NestedColumn:
        counts = _counts(rng, len(cost), [0.05, 0.65, 0.30])
        starts, parent, pos = _csr(counts)
        list_markup = rng.uniform(1.6, 2.4, len(pos))
        markup = np.where(pos == 0, list_markup, rng.uniform(1.2, 1.5, len(pos)))
        child = ChildTable(
            {
                "price": FloatColumn(np.round(cost[parent] * markup, 2)),
                "productPriceTypeId": CategoricalColumn(
                    np.minimum(pos, 1), ["LIST_PRICE", "WHOLESALE_PRICE"]
                ),
            }
        )
        return NestedColumn(starts, counts, child)

    def _supplier_list(
        self, rng: np.random.Generator, cost: np.ndarray, parties: PartyInfo
    ) -> NestedColumn:
        n = len(cost)
        n_sup = len(parties.supplier_urls)
        counts = _counts(rng, n, [0.04, 0.52, 0.30, 0.14])
        starts, parent, pos = _csr(counts)
        first = rng.integers(0, n_sup, n)
        supplier = (first[parent] + pos) % n_sup
        # The MAIN supplier is usually listed first, but not always: a connector that takes the
        # first entry as the main supplier is wrong for ~30% of multi-supplier products.
        main_pos = np.where(rng.random(n) < 0.7, 0, (rng.random(n) * counts).astype(np.int64))
        mp = main_pos[parent]
        rank = np.where(pos < mp, pos, pos - 1)
        pref = np.where(pos == mp, 0, np.minimum(1 + rank, 2))
        price = np.round(cost[parent] * rng.uniform(0.85, 1.0, len(pos)), 2)
        price[rng.random(len(pos)) < 0.005] = np.nan
        hashed = (parent * 2_654_435_761 + supplier * 40_503) % 100_000
        # Vendor SKUs are computed when a page is rendered (1.6M strings at 1M products would
        # cost ~100 MB); lookup tables make that two list indexings and one concatenation.
        vendor_prefix = [f"V{s:04d}-" for s in range(n_sup)]
        vendor_suffix = _five_digit_strings()

        def supplier_product_ids(idx: np.ndarray) -> list[Any]:
            return [
                None if h % 10 == 0 else vendor_prefix[s] + vendor_suffix[h]
                for s, h in zip(supplier[idx].tolist(), hashed[idx].tolist(), strict=True)
            ]

        child = ChildTable(
            {
                "supplierPartyUrl": CategoricalColumn(supplier, parties.supplier_urls),
                "supplierProductId": ComputedColumn(lambda: len(parent), supplier_product_ids),
                "supplierPrefOrderId": CategoricalColumn(pref, ["10_MAIN", "20_ALT", "30_ALT"]),
                "price": FloatColumn(price),
            }
        )
        return NestedColumn(starts, counts, child)

    def _reorder_guidelines(
        self, rng: np.random.Generator, n: int, fac: FacilityInfo
    ) -> NestedColumn:
        counts = _counts(rng, n, [0.40, 0.35, 0.20, 0.05])
        starts, parent, pos = _csr(counts)
        n_sub = len(fac.sub_urls)
        facility = (rng.integers(0, n_sub, n)[parent] + pos) % n_sub
        child = ChildTable(
            {
                "facilityUrl": CategoricalColumn(facility, fac.sub_urls),
                "reorderPoint": FloatColumn(rng.integers(5, 201, len(pos)), integral=True),
                "reorderQuantity": FloatColumn(rng.integers(10, 501, len(pos)), integral=True),
            }
        )
        return NestedColumn(starts, counts, child)

    def _user_fields(self, rng: np.random.Generator, n: int) -> NestedColumn:
        counts = _counts(rng, n, [0.10, 0.35, 0.35, 0.20])
        starts, parent, pos = _csr(counts)
        fields = words.USER_FIELDS
        attr = (rng.integers(0, len(fields), n)[parent] + pos) % len(fields)
        n_values = np.array([len(v) for _, v in fields])
        value_base = np.cumsum(n_values) - n_values
        value = value_base[attr] + (rng.random(len(pos)) * n_values[attr]).astype(np.int64)
        child = ChildTable(
            {
                "attrName": CategoricalColumn(attr, [name for name, _ in fields]),
                # Finale stores custom field values as strings, numbers included.
                "attrValue": CategoricalColumn(value, [v for _, vs in fields for v in vs]),
            }
        )
        return NestedColumn(starts, counts, child)

    # -- inventory items -------------------------------------------------------------------

    def sold_by_weight(self) -> np.ndarray:
        """Per product row: sold by weight or volume (~5%, from the seed alone)."""
        if self._by_weight is None:
            rng = np.random.default_rng([self.seed, _WEIGHT_STREAM])
            self._by_weight = rng.random(self.products) < WEIGHT_SHARE
        return self._by_weight

    def _inventory(self) -> Table:
        """Stock entries in the shape Finale documents.

        One entry per (facilityUrl, lotId, normalizedPackingString, orderUrl, productUrl),
        exactly one of quantityOnHand / quantityOnOrder / quantityReserved non-zero:

        - on hand: 0-8 per product at 1-4 sub-locations (two at a location differ in lot or
          packing), ``orderUrl`` null. Products sold by weight have fractional quantities
          (at most 3 decimals); a few entries are dirty (negative, or ``1e12``).
        - on order: one per (committed purchase order, product) over its lines; facility =
          the order's destination, lot and packing null, quantity = the lines' sum.
        - reserved: the same for committed sales orders, at the order's origin.

        Entries are ordered by product (creation order), on hand before order entries.
        """
        fac = self._facility_info()
        products = self.table("product")
        orders = self._order_info()
        by_weight = self.sold_by_weight()
        rng = _rng(self.seed, "inventoryitem")
        n = self.products
        counts = np.minimum(rng.poisson(2.0, n) + 1, 8).astype(np.int32)
        counts[rng.random(n) < 0.03] = 0  # new products without stock
        _, product, pos = _csr(counts)
        rows = len(product)
        n_sub = len(fac.sub_urls)
        # Two entries per location: a product sits at up to 4 sub-locations.
        sub = (rng.integers(0, n_sub, n)[product] + pos // 2) % n_sub
        qty = rng.integers(1, 500, rows).astype(np.float64)
        weighed = by_weight[product]
        qty[weighed] = np.round(rng.uniform(0.05, 250.0, int(weighed.sum())), 3)
        # Dirty stock: negative on-hand counts and an absurd quantity or two.
        dirty = rng.random(rows)
        negative = dirty < 0.005
        absurd = (dirty >= 0.005) & (dirty < 0.0055)
        qty[negative] = -qty[negative]
        qty[absurd] = 1e12
        lot_pool = max(50, min(5_000, n // 200))
        lot_names = [None] + [
            f"LOT-{24 + k % 3:02d}{1 + k % 12:02d}-{k:04d}" for k in range(lot_pool)
        ]
        lot = np.where(rng.random(rows) < 0.3, rng.integers(1, lot_pool + 1, rows), 0)
        packing = np.where(
            rng.random(rows) < 0.25, rng.integers(1, len(words.PACKINGS) + 1, rows), 0
        )
        # The second entry at a location must differ from the first in lot or packing.
        second = np.flatnonzero(pos % 2 == 1)
        clash = second[(lot[second] == lot[second - 1]) & (packing[second] == packing[second - 1])]
        packing[clash] = packing[clash] % len(words.PACKINGS) + 1

        # On order / reserved: committed (ORDER_LOCKED) orders, one entry per order x product.
        locked = orders.status == ORDER_STATUSES.index("ORDER_LOCKED")
        lines = np.flatnonzero(locked[orders.line_order])
        pair = orders.line_order[lines] * n + orders.line_product[lines]
        pairs, which = np.unique(pair, return_inverse=True)
        pair_qty = np.bincount(which, weights=orders.line_quantity[lines], minlength=len(pairs))
        keep = pair_qty != 0  # a dirty negative line may cancel another one
        pairs, pair_qty = pairs[keep], pair_qty[keep]
        pair_order, pair_product = np.divmod(pairs, n)
        pair_kind = np.where(orders.order_type[pair_order] == 0, 1, 2)  # 1 on order, 2 reserved

        # Merge both kinds into product order; a stable sort keeps on hand first per product.
        n_pairs = len(pairs)
        none = np.zeros(n_pairs, dtype=np.int64)
        merged = np.concatenate([product, pair_product])
        order = np.argsort(merged, kind="stable")
        product = merged[order]
        sub = np.concatenate([sub, orders.location[pair_order]])[order]
        lot = np.concatenate([lot, none])[order]
        packing = np.concatenate([packing, none])[order]
        order_code = np.concatenate([np.zeros(rows, dtype=np.int64), pair_order + 1])[order]
        kind = np.concatenate([np.zeros(rows, dtype=np.int64), pair_kind])[order]
        qty = np.concatenate([qty, pair_qty])[order]
        per_product = np.bincount(product, minlength=n)
        self.inventory_info = InventoryInfo(
            product=product, starts=np.cumsum(per_product) - per_product, counts=per_product
        )
        url_col = products.columns["productUrl"]
        facility_col = CategoricalColumn(sub, fac.sub_urls)
        return Table(
            "inventoryitem",
            {
                # Finale promises no productId here: the product is its URL (from the data).
                "productUrl": ComputedColumn(
                    lambda: len(facility_col), lambda idx: url_col.take(product[idx])
                ),
                "facilityUrl": facility_col,
                "lotId": CategoricalColumn(lot, lot_names),
                "normalizedPackingString": CategoricalColumn(packing, [None, *words.PACKINGS]),
                "orderUrl": CategoricalColumn(order_code, [None, *orders.urls]),
                "quantityOnHand": FloatColumn(np.where(kind == 0, qty, 0.0)),
                "quantityOnOrder": FloatColumn(np.where(kind == 1, qty, 0.0)),
                "quantityReserved": FloatColumn(np.where(kind == 2, qty, 0.0)),
            },
            key_field=None,
            url_field=None,
        )

    # -- orders ----------------------------------------------------------------------------

    def _orders(self) -> Table:
        fac = self._facility_info()
        parties = self._party_info()
        products = self.table("product")
        rng = _rng(self.seed, "order")
        m = max(40, self.products // 10)
        created = np.sort(_dates_between(rng, self.anchor - 730 * DAY, self.anchor - DAY, m))
        otype = (rng.random(m) < 0.4).astype(np.int32)  # 0 purchase, 1 sales
        status = rng.choice(4, size=m, p=[0.15, 0.20, 0.55, 0.10]).astype(np.int32)
        # Every (type, status) pair exists, whatever the size.
        otype[:8] = [0, 0, 0, 0, 1, 1, 1, 1]
        status[:8] = [0, 1, 2, 3, 0, 1, 2, 3]
        order_ids = [str(10_000 + i) for i in range(m)]
        order_urls = [f"{self.api}/order/{oid}" for oid in order_ids]
        order_date = (created - rng.integers(0, 2 * DAY, m)) // DAY * DAY
        due = order_date + rng.integers(7, 46, m) * DAY
        completed = status == 2
        receive = np.minimum(
            order_date + rng.integers(3, 41, m) * DAY + rng.integers(8 * 3600, 17 * 3600, m),
            self.anchor,
        )
        receive = np.where(completed, np.maximum(receive, created), timefmt.NULL_DATE)
        updated = np.where(
            completed,
            np.minimum(np.maximum(receive, created) + rng.integers(0, 3600, m), self.anchor),
            _dates_between(rng, created, self.anchor, m),
        )
        n_sub = len(fac.sub_urls)
        location = rng.integers(0, n_sub, m)
        destination = np.where(otype == 0, location + 1, 0)
        origin = np.where(otype == 1, location + 1, 0)
        dirty = rng.random(m)
        due = np.where(dirty < 0.005, timefmt.NULL_DATE, due)

        url_col = ObjectColumn(order_urls)
        # Drawn in this order (roles, items, adjustments): the same seed, the same orders.
        roles = self._order_roles(rng, otype, dirty, parties)
        items = self._order_items(rng, otype, url_col, products)
        adjustments = self._order_adjustments(rng, m)
        assert self._order_lines is not None
        line_order, line_product, line_quantity = self._order_lines
        self.order_info = OrderInfo(
            urls=order_urls,
            order_type=otype.copy(),
            status=status.copy(),
            location=location.copy(),
            line_order=line_order,
            line_product=line_product,
            line_quantity=line_quantity,
        )
        status_col = CategoricalColumn(status.copy(), list(ORDER_STATUSES))
        table_len = lambda: len(url_col)  # noqa: E731 - tiny closure, clearer inline

        def action(name: str) -> ComputedColumn:
            valid = set(ORDER_ACTIONS[name])

            def compute(idx: np.ndarray) -> list[Any]:
                return [
                    f"{u}/{name}" if s in valid else None
                    for u, s in zip(url_col.take(idx), status_col.take(idx), strict=True)
                ]

            return ComputedColumn(table_len, compute)

        return Table(
            "order",
            {
                "orderId": ObjectColumn(order_ids),
                "orderUrl": url_col,
                "orderTypeId": CategoricalColumn(otype, list(ORDER_TYPES)),
                "statusId": status_col,
                "orderDate": DateColumn(order_date),
                "dueDate": DateColumn(due),
                "receiveDate": DateColumn(receive),
                "createdDate": DateColumn(created),
                "lastUpdatedDate": DateColumn(updated),
                "destinationFacilityUrl": CategoricalColumn(destination, [None, *fac.sub_urls]),
                "originFacilityUrl": CategoricalColumn(origin, [None, *fac.sub_urls]),
                "orderRoleList": roles,
                "orderItemList": items,
                "orderAdjustmentList": adjustments,
                "actionUrlLock": action("lock"),
                "actionUrlComplete": action("complete"),
                "actionUrlCancel": action("cancel"),
                "actionUrlEdit": action("edit"),
            },
            key_field="orderId",
            url_field="orderUrl",
        )

    def _order_roles(
        self, rng: np.random.Generator, otype: np.ndarray, dirty: np.ndarray, parties: PartyInfo
    ) -> NestedColumn:
        m = len(otype)
        counts = np.where((dirty >= 0.005) & (dirty < 0.01), 0, 1).astype(np.int32)
        starts, parent, _ = _csr(counts)
        n_sup, n_cus = len(parties.supplier_ids), len(parties.customer_ids)
        sup = rng.integers(0, n_sup, m)
        cus = n_sup + rng.integers(0, n_cus, m)
        party = np.where(otype == 0, sup, cus)[parent]
        child = ChildTable(
            {
                "roleTypeId": CategoricalColumn(otype[parent], ["SUPPLIER", "CUSTOMER"]),
                "partyId": CategoricalColumn(party, parties.supplier_ids + parties.customer_ids),
            }
        )
        return NestedColumn(starts, counts, child)

    def _order_items(
        self,
        rng: np.random.Generator,
        otype: np.ndarray,
        url_col: ObjectColumn,
        products: Table,
    ) -> NestedColumn:
        m = len(otype)
        counts = rng.integers(1, 7, m).astype(np.int32)
        starts, parent, pos = _csr(counts)
        lines = len(parent)
        product = rng.integers(0, self.products, lines)
        assert self.product_cost is not None
        base_cost = self.product_cost[product]
        base_cost = np.where(np.isfinite(base_cost) & (base_cost > 0), base_cost, 10.0)
        factor = np.where(otype[parent] == 0, rng.uniform(0.85, 1.0, lines), 2.0)
        unit_price = np.round(np.minimum(base_cost, 1e5) * factor, 2)
        quantity = rng.integers(1, 201, lines).astype(np.float64)
        dirty = rng.random(lines)
        unit_price[dirty < 0.005] = np.nan
        quantity[(dirty >= 0.005) & (dirty < 0.008)] *= -1
        self._order_lines = (parent, product, quantity.copy())
        pid_col = products.columns["productId"]
        purl_col = products.columns["productUrl"]
        seq = pos + 1

        def item_urls(idx: np.ndarray) -> list[Any]:
            return [
                f"{u}/item/{s}"
                for u, s in zip(url_col.take(parent[idx]), seq[idx].tolist(), strict=True)
            ]

        child = ChildTable(
            {
                "orderItemUrl": ComputedColumn(lambda: lines, item_urls),
                "productId": ComputedColumn(lambda: lines, lambda i: pid_col.take(product[i])),
                "productUrl": ComputedColumn(lambda: lines, lambda i: purl_col.take(product[i])),
                "quantity": FloatColumn(quantity, integral=True),
                "unitPrice": FloatColumn(unit_price),
            }
        )
        return NestedColumn(starts, counts, child)

    def _order_adjustments(self, rng: np.random.Generator, m: int) -> NestedColumn:
        counts = _counts(rng, m, [0.6, 0.3, 0.1])
        starts, _, _ = _csr(counts)
        lines = int(counts.sum())
        kind = rng.integers(0, len(words.ADJUSTMENTS), lines)
        amount = np.round(rng.uniform(5, 150, lines), 2)
        amount = np.where(kind == 1, -amount, amount)  # discounts are negative
        child = ChildTable(
            {
                "amount": FloatColumn(amount),
                "description": CategoricalColumn(kind, words.ADJUSTMENTS),
            }
        )
        return NestedColumn(starts, counts, child)
