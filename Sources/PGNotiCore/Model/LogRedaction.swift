/// Decides how each decoded field may appear in a log line. Card numbers, phone numbers,
/// e-mail addresses and resident-number fragments are masked; everything else is shown.
public enum LogRedaction {
    enum Rule { case card, phone, email, secret }

    /// Keyed by the normalized spelling (lowercase, no `_`/`-`) so every PG's variant matches.
    static let rules: [String: Rule] = [
        "pinno": .card, "cardno": .card, "cardnum": .card,
        "buyertel": .phone, "buyerphoneno": .phone, "userphoneno": .phone, "recipientphoneno": .phone,
        "buyeremail": .email, "email": .email,
        "buyerauthnum": .secret, "signvalue": .secret,
    ]

    public static func masked(_ fields: [DecodedField]) -> [String: String] {
        var out: [String: String] = [:]
        for field in fields {
            let value = field.values.joined(separator: ",")
            let key = field.name.lowercased().filter { $0 != "_" && $0 != "-" }
            switch rules[key] {
            case .card: out[field.name] = Masking.cardNumber(value)
            case .phone: out[field.name] = Masking.phone(value)
            case .email: out[field.name] = Masking.email(value)
            case .secret: out[field.name] = Masking.secret(value)
            case nil: out[field.name] = value
            }
        }
        return out
    }
}
