"""Allure helpers, timeline plots and the audit-grade HTML report."""
