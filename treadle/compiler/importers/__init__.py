"""Importers: workflows written in other notations, turned into `.flow` source."""
