"""Logger backends. The interface is in :mod:`.base`; each built-in backend (``csv_logger``,
``tensorboard_logger``, ``mlflow_logger``, ``null_logger``) is its own plugin module, registered with the
plugin manager exactly like a third-party one. Nothing is imported here, so importing the package never
pulls in matplotlib, TensorBoard or MLflow.
"""
