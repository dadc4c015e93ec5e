"""The bottom layer: records and errors every package may import.

It imports nothing of the project (tests/test_layers.py holds that), and importing it
loads only numpy: `realtime/__init__.py` is empty, so `import realtime.common.types`
pulls in no runtime module.
"""
