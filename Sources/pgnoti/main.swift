print("pgnoti")
