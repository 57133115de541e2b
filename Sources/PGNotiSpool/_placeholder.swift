enum _PlaceholderPGNotiSpool {}
