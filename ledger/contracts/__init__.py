"""Compile, deploy and talk to the alliance's contracts."""
