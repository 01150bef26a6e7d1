"""The pipeline around the models: data, configuration, the training objective,
training, callbacks, evaluation, metrics, plots and exports. train.py and
evaluate.py are thin command lines over it."""
