# Plugins shipped with aloopd (see plugins/README.md).
