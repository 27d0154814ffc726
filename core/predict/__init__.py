"""Prediction: the trained model, whoever asks.

- predictor: a run's (or an export's) model with its preprocessing and blend partner
- files: predicting a table, an image, a folder or a zip
- blend: the linear partner models a run may average with its network
- explain: Grad-CAM and word attributions
- export, export_hf: folders, ONNX and INT8, and a transformers folder
"""
