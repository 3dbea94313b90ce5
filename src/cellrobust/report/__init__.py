"""Figures (pure table -> figure), the single-file HTML report and ``summary.md``."""

from cellrobust.report.build import ReportOptions, build_report, read_results

__all__ = ["ReportOptions", "build_report", "read_results"]
