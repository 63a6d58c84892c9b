"""Site configuration: the validated model of one intersection and its loader."""

from rsu_contracts.config.load import ConfigError, load_site_config, parse_site_config, resolve_relative
from rsu_contracts.config.model import SiteConfig

__all__ = ["ConfigError", "SiteConfig", "load_site_config", "parse_site_config", "resolve_relative"]
