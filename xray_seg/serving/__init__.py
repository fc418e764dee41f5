"""Export for inspection stations: SavedModel signatures, TFLite and ONNX."""
