# Writes test/fixtures/identity-classes.json: invented cases of the three hard unification classes.
import json
out = []
# Class 1: a look-alike on an earlier CoinGecko page takes the true coin's place.
steal = [
  # (true name, sym, cg id, cp id, price, cg rank, decoy name, decoy id, decoy price factor)
  ("Zephyr Protocol", "ZEPH", "zephyr-protocol", "zeph-zephyr-protocol", 2.41, 4010, "Zeta Phoenix", "zeta-phoenix", 1.02),
  ("Quillon", "QLN", "quillon", "qln-quillon", 0.083, 4120, "Quantum Lantern", "quantum-lantern", 0.98),
  ("Morrow Chain", "MRW", "morrow-chain", "mrw-morrow-chain", 13.7, 4230, "Meridian Rewards", "meridian-rewards", 1.015),
  ("Orbis Finance", "ORBS", "orbis-finance", "orbs-orbis", 0.552, 4340, "Orbital Shards", "orbital-shards", 0.985),
  ("Velaris", "VLR", "velaris", "vlr-velaris", 1.07, 4450, "Valor Network Token", "valor-network-token", 1.01),
  ("Halcyon", "HAL", "halcyon", "hal-halcyon", 0.0191, 4560, "Halcyon (PulseChain)", "halcyon-pulsechain", 1.0),
  ("Corvid", "CRV2", "corvid", "crv2-corvid", 7.9, 4670, "Corvid (Wormhole)", "corvid-wormhole", 1.003),
  ("Lumen Gate", "LGT", "lumen-gate", "lgt-lumen-gate", 0.31, 4780, "Bridged Lumen Gate", "bridged-lumen-gate", 0.997),
  ("Pyxis", "PYX", "pyxis", "pyx-pyxis", 44.0, 4890, "Wrapped Pyxis (BSC)", "wrapped-pyxis-bsc", 1.004),
  ("Sable", "SBL", "sable-2", "sbl-sable", 0.0042, 4999, "Sable (BSC)", "sable-bsc", 1.0),
  ("Tarn", "TARN", "tarn-token", "tarn-tarn", 0.77, 5110, "Tern Analytics", "tern-analytics", 1.02),
]
for i, (name, sym, gid, pid, price, rank, dname, did, f) in enumerate(steal):
  key = "c-" + sym.lower(); s = sym.lower()
  out.append({"class": "steal", "key": key, "symbol": sym, "price": price,
    "coingecko": {"id": gid, "name": name, "symbol": sym.lower(), "rank": rank},
    "coinpaprika": {"id": pid, "name": name, "symbol": sym, "rank": rank - 40},
    "csv": {"id": gid, "name": name, "symbol": sym} if i % 2 == 0 else None})
  out.append({"class": "steal", "key": f"{key}-lookalike", "symbol": sym, "price": round(price * f, 8),
    "coingecko": {"id": did, "name": dname, "symbol": sym.lower(), "rank": rank - 12},
    "coinpaprika": None, "csv": None})
# Class 2: migrated tokens, "X [OLD]"/"XOLD" on CoinGecko, "X"/"X" on CoinPaprika.
migrated = [
  ("Kestrel", "KST", "[OLD]", True, 0.61, 5300, 1000),
  ("Ambergris", "AMB", "(OLD)", True, 3.2, 5350, None),
  ("Nimbus Link", "NML", "[OLD]", False, 0.0071, 5400, 100),
  ("Ferrox", "FRX", "(OLD)", False, 18.4, 5450, None),
  ("Galena", "GLN", "[OLD]", True, 0.129, 5500, 0.001),
  ("Ostrava", "OSV", "(OLD)", True, 1.9, 5550, None),
  ("Rhodium Pay", "RHP", "[OLD]", True, 0.044, 5600, 10),
  ("Talon", "TLN", "(OLD)", False, 6.6, 5650, None),
  ("Umbra Coin", "UMB", "[OLD]", True, 0.35, 5700, 1000),
  ("Wyvern", "WYV", "(OLD)", True, 0.0009, 5750, None),
]
for name, sym, mark, oldsym, price, rank, redenom in migrated:
  key = "c-" + sym.lower(); s = sym.lower()
  slug = name.lower().replace(" ", "-")
  out.append({"class": "migrated", "key": key, "symbol": sym, "price": price,
    "coingecko": {"id": f"{slug}-old", "name": f"{name} {mark}", "symbol": (sym + "OLD").lower() if oldsym else sym.lower(), "rank": rank},
    "coinpaprika": {"id": f"{s}-{slug}", "name": name, "symbol": sym, "rank": rank + 20},
    "csv": None})
  if redenom:
    out.append({"class": "migrated", "key": f"{key}-new", "symbol": sym, "price": price * redenom,
      "coingecko": {"id": slug, "name": name, "symbol": sym.lower(), "rank": rank - 900},
      "coinpaprika": None, "csv": None})
# Class 3: a name and ticker handed to a successor; the renamed original keeps the old price.
successor = [
  ("Terrane", "TRN", 0.00006, 6000, 1.3, True),
  ("Solace", "SLC", 0.42, 6100, 1.15, False),
  ("Aurum Gate", "AUG", 2.3, 6200, 1.6, True),
  ("Brisa", "BRS", 0.019, 6300, 1.12, False),
  ("Cindral", "CND", 11.0, 6400, 1.25, True),
  ("Dovetail", "DVT", 0.0033, 6500, 1.4, False),
  ("Elmstone", "ELM", 0.57, 6600, 1.18, True),
  ("Fenwick", "FNW", 5.5, 6700, 1.33, False),
  ("Glimmer", "GLM2", 0.061, 6800, 1.2, True),
  ("Hollis", "HLS", 0.24, 6900, 1.45, False),
]
for name, sym, price, rank, k, cp_successor in successor:
  key = "c-" + sym.lower(); s = sym.lower()
  slug = name.lower().replace(" ", "-")
  # CoinGecko renamed the original "X Classic"/"XC" and gave "X"/"X" to the successor; CoinPaprika did not rename.
  out.append({"class": "successor", "key": f"{key}-classic", "symbol": sym, "price": price,
    "coingecko": {"id": slug, "name": f"{name} Classic", "symbol": (sym + "C").lower(), "rank": rank},
    "coinpaprika": {"id": f"{s}-{slug}", "name": name, "symbol": sym, "rank": rank + 15},
    "csv": None})
  out.append({"class": "successor", "key": key, "symbol": sym, "price": round(price * k, 10),
    "coingecko": {"id": f"{slug}-2", "name": name, "symbol": sym.lower(), "rank": rank - 2000},
    "coinpaprika": {"id": f"{s}2-{slug}-v2", "name": f"{name} v2", "symbol": f"{sym}2", "rank": rank - 1980} if cp_successor else None,
    "csv": None})
import os
json.dump(out, open(os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "identity-classes.json"), "w"), indent=1)
print(len(out), {c: sum(1 for x in out if x["class"] == c and x["coinpaprika"]) for c in ("steal", "migrated", "successor")})
