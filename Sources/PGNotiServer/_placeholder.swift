enum _PlaceholderPGNotiServer {}
