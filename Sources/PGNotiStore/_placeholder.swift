enum _PlaceholderPGNotiStore {}
