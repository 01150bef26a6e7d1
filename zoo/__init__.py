"""The zoo's machinery around the models: data, configs, metrics, monitoring,
plots and exports. train.py and evaluate.py are thin command lines over it."""
