"""Domain physics shared by model folders: cell-culture kinetics (Xing et al. 2010), uptake and dilution
balances, culture recipes (boluses, feeds, samples); freeze-drying relations (vapour pressure of ice,
cake resistance, vial heat transfer, fill height). Imports ``core`` and ``engine``."""
