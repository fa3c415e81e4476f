"""Word lists the generator draws realistic names from (a garden-supply wholesaler)."""

from __future__ import annotations

# (userCategory, SKU prefix, product nouns)
CATEGORIES: list[tuple[str, str, list[str]]] = [
    (
        "Soil & Amendments",
        "SOIL",
        ["Potting Mix", "Garden Soil", "Compost", "Perlite", "Peat Moss", "Worm Castings"],
    ),
    (
        "Fertilizers",
        "FERT",
        ["Kelp Meal", "Bone Meal", "Blood Meal", "Fish Emulsion", "Bat Guano", "Tomato Food"],
    ),
    (
        "Seeds",
        "SEED",
        ["Tomato Seeds", "Basil Seeds", "Sunflower Seeds", "Lettuce Seeds", "Wildflower Mix"],
    ),
    (
        "Tools",
        "TOOL",
        ["Hand Trowel", "Pruning Shears", "Garden Fork", "Hori Hori Knife", "Watering Can"],
    ),
    (
        "Containers",
        "POT",
        ["Terracotta Pot", "Fabric Grow Bag", "Seed Tray", "Hanging Basket", "Window Box"],
    ),
    (
        "Irrigation",
        "IRR",
        ["Drip Emitter", "Soaker Hose", "Hose Timer", "Sprinkler Head", "Rain Barrel"],
    ),
    (
        "Pest Control",
        "PEST",
        ["Neem Oil", "Insecticidal Soap", "Slug Bait", "Sticky Traps", "Row Cover"],
    ),
    ("Lighting", "LITE", ["LED Grow Light", "Light Stand", "Timer Switch", "Reflector Panel"]),
]

ADJECTIVES = [
    "Organic",
    "Premium",
    "Classic",
    "Pro",
    "Value",
    "Heirloom",
    "Heavy-Duty",
    "Eco",
    "Deluxe",
    "Compact",
    "Professional",
    "Everyday",
]

SIZES = [
    "1 qt",
    "8 qt",
    "1 cu ft",
    "2 cu ft",
    "2 lb",
    "5 lb",
    "25 lb",
    "Small",
    "Medium",
    "Large",
    "12 in",
    "Pack of 50",
]

VARIANTS = [
    "",
    "Black",
    "Green",
    "Natural",
    "Terracotta",
    "Blue",
    "Red",
    "White",
    "(Case of 6)",
    "(Case of 12)",
    "Refill",
    "Starter Kit",
    "Bulk",
    "Trial Size",
    "Gift Set",
    "Mini",
]

# Values a data-entry person might leave behind; used for the ~1.5% dirty records.
UNICODE_NAMES = [
    "Café Tierra Orgánica — 有機肥料 🌱",
    "Jardinería Núñez Abono Ñ 10 kg",
    "Сад и Огород: Субстрат 5 л",
    "庭園用 腐葉土 20L",
    "Ökodünger für Gärten (Größe L)",
    "Engrais « Spécial » Tomates",
]

USER_FIELDS: list[tuple[str, list[str]]] = [
    ("Color", ["Red", "Green", "Black", "Terracotta", "Natural"]),
    ("Season", ["Spring", "Summer", "Fall", "Winter", "All year"]),
    ("Hazmat", ["Yes", "No"]),
    ("Country of origin", ["USA", "Canada", "Mexico", "Netherlands", "China"]),
    ("Shelf life (days)", ["180", "365", "730"]),
    ("Bin note", ["Top shelf", "Keep dry", "Fragile", ""]),
]

WAREHOUSES = [
    "Main Warehouse",
    "East Distribution Center",
    "West Distribution Center",
    "Retail Store",
    "Overflow Storage",
]

SUB_LOCATIONS = [
    "Receiving",
    "Aisle A",
    "Aisle B",
    "Aisle C",
    "Bulk Rack",
    "Cold Room",
    "Pick Face",
    "Mezzanine",
    "Returns",
    "Yard",
]

COMPANY_FIRST = [
    "Green Valley",
    "Sunrise",
    "Blue Ridge",
    "Prairie",
    "Cedar Creek",
    "Golden Leaf",
    "Riverbend",
    "Oak Hollow",
    "Maple Street",
    "Hillside",
    "Evergreen",
    "Willow Bend",
    "Stonebrook",
    "Harvest Moon",
    "North Fork",
    "Silver Lake",
]
SUPPLIER_LAST = ["Supply Co.", "Growers", "Wholesale", "Horticulture", "Manufacturing", "Imports"]
CUSTOMER_LAST = ["Nursery", "Landscaping LLC", "Garden Center", "Farm", "Hardware", "Co-op"]
UNICODE_PARTIES = ["Jardinería Núñez S.A.", "株式会社グリーンガーデン", "Gärtnerei Müller GmbH"]

CITIES = [
    ("Portland", "OR", "97201"),
    ("Austin", "TX", "78701"),
    ("Denver", "CO", "80202"),
    ("Madison", "WI", "53703"),
    ("Raleigh", "NC", "27601"),
    ("Sacramento", "CA", "95814"),
    ("Burlington", "VT", "05401"),
    ("Boise", "ID", "83702"),
]
STREETS = ["Main St", "Oak Ave", "Industrial Pkwy", "Market St", "Farm Rd", "Commerce Dr"]

PACKINGS = ["12/1", "6/1", "24/1", "4/1 cs"]
ADJUSTMENTS = ["Freight", "Discount", "Fuel surcharge", "Handling"]
CARRIERS = ["Speedy Freight Lines", "Parcel Express"]
