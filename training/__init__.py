"""TensorFlow/Keras training, evaluation, scoring and the MLflow registry gate."""
