"""Foundations and the model-folder contract: Model and load_model, parameters, recipes (scenarios) and
input programs, experiment data, units, plausibility checks, errors. Imports nothing else from biotwin."""
