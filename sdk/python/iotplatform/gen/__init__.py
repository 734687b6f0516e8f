"""Generated from proto/ by scripts/sdk-generate.sh; do not edit."""
