/// Redaction for log lines and operator output. Notifications carry card numbers, phone numbers
/// and partial resident numbers; logs outlive the retention rules of the
/// database, so they only ever see these masked forms.
public enum Masking {
    /// Keep first 6 and last 4 (the PCI DSS display limit) at most; separators stay so the shape is recognisable.
    public static func cardNumber(_ s: String) -> String {
        let chars = Array(s)
        let positions = chars.indices.filter { chars[$0] != "-" && chars[$0] != " " }
        let n = positions.count
        // Below 13 characters it is not a full PAN (a fragment, a typo), and
        // 6+4 would reveal nearly all of it.
        let (head, tail) = n >= 13 ? (6, 4) : (0, min(2, n / 2))
        return mask(chars, positions: positions, keepHead: head, keepTail: tail)
    }

    /// Keep first 3 (carrier prefix) and last 4 digits; non-digits stay in place.
    public static func phone(_ s: String) -> String {
        let chars = Array(s)
        let positions = chars.indices.filter { chars[$0].isASCII && chars[$0].isNumber }
        let n = positions.count
        let (head, tail) = n >= 8 ? (3, 4) : (0, min(2, n / 2))
        return mask(chars, positions: positions, keepHead: head, keepTail: tail)
    }

    /// `h***@example.com`: the mask is fixed-width so the local part's length is not revealed.
    public static func email(_ s: String) -> String {
        guard let at = s.lastIndex(of: "@") else { return secret(s) }
        let local = s[s.startIndex..<at]
        let domain = s[s.index(after: at)...]
        return (local.first.map(String.init) ?? "") + "***@" + domain
    }

    /// Fixed output regardless of input, so not even the length leaks.
    public static func secret(_ s: String) -> String {
        "****"
    }

    private static func mask(_ chars: [Character], positions: [Int], keepHead: Int, keepTail: Int) -> String {
        var out = chars
        for (rank, i) in positions.enumerated() where rank >= keepHead && rank < positions.count - keepTail {
            out[i] = "*"
        }
        return String(out)
    }
}

extension Masking {
    enum Rule { case card, phone, email, secret }

    /// How each decoded field may be shown outside the ledger (log lines, CLI output). Keyed by
    /// the normalized spelling so every PG's variant matches.
    static let rules: [String: Rule] = [
        "pinno": .card, "cardno": .card, "cardnum": .card,
        "buyertel": .phone, "buyerphoneno": .phone, "userphoneno": .phone, "recipientphoneno": .phone,
        "buyeremail": .email, "email": .email,
        "buyerauthnum": .secret, "signvalue": .secret,
    ]

    /// Card numbers, phone numbers, e-mail addresses and resident-number fragments masked;
    /// everything else shown. Repeated values are joined with commas.
    public static func fields(_ fields: [DecodedField]) -> [(name: String, value: String)] {
        fields.map { field in
            (field.name, value(field.values.joined(separator: ","), named: field.name))
        }
    }

    /// `value` masked as the field called `name` requires.
    public static func value(_ value: String, named name: String) -> String {
        switch rules[FieldKey.normalize(name)] {
        case .card: cardNumber(value)
        case .phone: phone(value)
        case .email: email(value)
        case .secret: value.isEmpty ? value : secret(value)
        case nil: value
        }
    }
}
