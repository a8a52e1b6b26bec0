"""Study reports: tables, figures and the claims-vs-measurements section."""

from gengap.report.markdown import write_report

__all__ = ["write_report"]
