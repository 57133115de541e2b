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

    /// `김**`: the first character, then a fixed mask, so a name's length does not show.
    public static func name(_ s: String) -> String {
        guard let first = s.first else { return s }
        return String(first) + "**"
    }

    /// `서울특별시 ****`: the first word (the city or province), then a fixed mask.
    public static func address(_ s: String) -> String {
        let words = s.split(separator: " ", omittingEmptySubsequences: true)
        guard let first = words.first else { return s }
        return words.count == 1 ? "****" : String(first) + " ****"
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
    enum Rule { case card, phone, email, name, address, secret }

    /// The personal fields of every provider and how each may be shown outside the ledger (log
    /// lines, CLI output): card numbers, phones, e-mails, names, addresses, recipients. Keyed by
    /// the normalized spelling so every PG's variant matches. PIPA treats a name or an address
    /// alone as personal data, so they are masked as firmly as a phone number.
    static let rules: [String: Rule] = [
        // Smartro, TomatoPay, Innopay, Payup: card numbers.
        "pinno": .card, "cardno": .card, "cardnum": .card,
        "buyertel": .phone, "buyerphoneno": .phone, "userphoneno": .phone, "recipientphoneno": .phone,
        "phone": .phone, "mobile": .phone,
        "buyeremail": .email, "email": .email,
        // Smartro and TomatoPay `Name`, Innopay `buyerName`/`recipientName`, Payup `userName`.
        "name": .name, "buyername": .name, "recipientname": .name, "username": .name, "cardholdername": .name,
        // Innopay's delivery address.
        "address": .address, "addressdetail": .address, "buyeraddr": .address, "addr": .address,
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
        case .name: value.isEmpty ? value : Self.name(value)
        case .address: value.isEmpty ? value : Self.address(value)
        case .secret: value.isEmpty ? value : secret(value)
        case nil: value
        }
    }
}

extension Masking {
    /// An event document (v1) for an operator's screen: the members that carry personal data
    /// masked as the fields they came from are. The document the app receives is not changed:
    /// its personal fields are the app's contract.
    public static func event(_ object: [String: Any]) -> [String: Any] {
        var object = object
        if var buyer = object["buyer"] as? [String: Any] {
            if let v = buyer["name"] as? String { buyer["name"] = name(v) }
            if let v = buyer["phone"] as? String { buyer["phone"] = phone(v) }
            if let v = buyer["email"] as? String { buyer["email"] = email(v) }
            object["buyer"] = buyer
        }
        if var raw = object["raw"] as? [String: Any] {
            for (field, v) in raw {
                if let text = v as? String {
                    raw[field] = value(text, named: field)
                } else if let list = v as? [String] {
                    raw[field] = list.map { value($0, named: field) }
                }
            }
            object["raw"] = raw
        }
        if var delivery = object["delivery"] as? [String: Any] {
            if let v = delivery["recipient_phone"] as? String { delivery["recipient_phone"] = phone(v) }
            if let v = delivery["recipient_name"] as? String { delivery["recipient_name"] = name(v) }
            if let v = delivery["address"] as? String { delivery["address"] = address(v) }
            if let v = delivery["address_detail"] as? String { delivery["address_detail"] = address(v) }
            object["delivery"] = delivery
        }
        if var card = object["card"] as? [String: Any], let v = card["number"] as? String {
            card["number"] = cardNumber(v)
            object["card"] = card
        }
        return object
    }
}
