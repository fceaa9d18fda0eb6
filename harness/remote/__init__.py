"""Drivers for real hosts over SSH (fabric): Linux and Windows (PowerShell)."""
