/// How a field is looked up. PGs (and versions of the same PG) disagree on
/// case and separators (`StateCd`, `state_cd`), so every spelling is compared
/// in a normalized form; `spellings` lists only names that truly differ.
public struct FieldKey: Sendable, Hashable, ExpressibleByStringLiteral {
    /// First is canonical; order is also lookup preference when a body carries several aliases.
    public let spellings: [String]

    public init(_ spellings: String...) {
        self.spellings = spellings
    }

    public init(stringLiteral: String) {
        self.spellings = [stringLiteral]
    }

    /// Lowercase, `_`/`-` removed, trailing `[]` removed (PHP-style array names).
    public static func normalize(_ name: String) -> String {
        var n = Substring(name)
        if n.hasSuffix("[]") { n = n.dropLast(2) }
        return String(n.lowercased().filter { $0 != "_" && $0 != "-" })
    }
}

public struct DecodedField: Sendable, Equatable {
    /// The first spelling seen in the body.
    public let name: String
    /// Decoded values in arrival order, untrimmed.
    public let values: [String]
    public let rawValues: [[UInt8]]
    public let isLossy: Bool

    public init(name: String, values: [String], rawValues: [[UInt8]], isLossy: Bool) {
        self.name = name
        self.values = values
        self.rawValues = rawValues
        self.isLossy = isLossy
    }
}

/// A form body decoded with one charset and indexed by normalized name.
public struct Fields: Sendable {
    public let all: [DecodedField]
    private let index: [String: Int]

    public init(_ body: FormBody, charset: TextCharset) {
        var order: [String] = []
        var names: [String: String] = [:]
        var values: [String: [String]] = [:]
        var raws: [String: [[UInt8]]] = [:]
        var lossy: [String: Bool] = [:]
        for pair in body.pairs {
            let name = KoreanText.decode(pair.name, as: charset).text
            let key = FieldKey.normalize(name)
            if names[key] == nil {
                names[key] = name
                order.append(key)
            }
            let value = KoreanText.decode(pair.value, as: charset)
            values[key, default: []].append(value.text)
            raws[key, default: []].append(pair.value)
            lossy[key, default: false] = lossy[key, default: false] || value.isLossy
        }
        var all: [DecodedField] = []
        var index: [String: Int] = [:]
        for key in order {
            index[key] = all.count
            all.append(
                DecodedField(
                    name: names[key]!, values: values[key]!, rawValues: raws[key]!, isLossy: lossy[key]!
                ))
        }
        self.all = all
        self.index = index
    }

    /// The field for the first spelling of `key` that is present. Aliases are
    /// not merged: a body carrying both `OID` and `MOID` means two different
    /// things, and the key's order says which one we trust.
    private func field(_ key: FieldKey) -> DecodedField? {
        for spelling in key.spellings {
            if let i = index[FieldKey.normalize(spelling)] { return all[i] }
        }
        return nil
    }

    /// First value, trimmed; nil if absent or blank, since PGs send `Name=` for "not provided".
    public subscript(_ key: FieldKey) -> String? {
        guard let first = field(key)?.values.first else { return nil }
        let trimmed = Self.trim(first)
        return trimmed.isEmpty ? nil : trimmed
    }

    public func values(_ key: FieldKey) -> [String] {
        field(key)?.values.map(Self.trim) ?? []
    }

    public func rawValue(_ key: FieldKey) -> [UInt8]? {
        field(key)?.rawValues.first
    }

    public func contains(_ key: FieldKey) -> Bool {
        field(key) != nil
    }

    public var lossyFieldNames: [String] {
        all.filter(\.isLossy).map(\.name)
    }

    static func trim(_ s: String) -> String {
        let scalars = s.unicodeScalars
            .drop(while: { $0.properties.isWhitespace })
            .reversed().drop(while: { $0.properties.isWhitespace }).reversed()
        return String(String.UnicodeScalarView(scalars))
    }
}

extension FieldKey {
    public static let stateCd: FieldKey = FieldKey("StateCd", "state_cd")
    public static let fnCd: FieldKey = FieldKey("FnCd", "fn_cd")
    public static let fnName: FieldKey = FieldKey("FnName", "fn_name")
    public static let name: FieldKey = FieldKey("Name", "name")
    public static let mallUserID: FieldKey = FieldKey("MallUserID", "mallUserID")
    public static let orderID: FieldKey = FieldKey("OID", "MOID", "Moid")
}
