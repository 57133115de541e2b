enum _PlaceholderPGNotiCore {}
