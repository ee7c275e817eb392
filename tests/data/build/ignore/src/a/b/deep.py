# src/a/b/deep.py
