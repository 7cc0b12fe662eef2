"""Committed default configuration, shipped inside the wheel as package data."""
