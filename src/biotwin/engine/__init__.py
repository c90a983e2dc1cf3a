"""Running a model: discretization and the simulation (prepare, initialize, solve, warm start, collect),
Ipopt through PyNumero, forward integration, compiled expressions, results. Imports only ``core``."""
