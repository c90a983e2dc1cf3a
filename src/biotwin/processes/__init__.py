"""Domain physics shared by model folders: cell-culture kinetics (Xing et al. 2010), uptake and dilution
balances, culture recipes (boluses, feeds, samples). Imports ``core`` and ``engine``."""
