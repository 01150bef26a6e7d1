"""Peers' models written as their authors' readers would write them (plain Keras)."""
