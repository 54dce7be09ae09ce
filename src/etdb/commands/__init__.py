"""The `etdb` command's groups, one module each; `etdb.cli` mounts them."""
