/// How a field is looked up. PGs (and versions of the same PG) disagree on
/// case and separators (`StateCd`, `state_cd`), so every spelling is compared
/// in a normalized form; `spellings` lists only names that truly differ.
/// Each provider declares the keys it reads, with its own aliases.
public struct FieldKey: Sendable, Hashable, ExpressibleByStringLiteral {
    /// First is canonical; order is also lookup preference when a body carries several aliases.
    public let spellings: [String]
    /// `spellings`, normalized once when the key is made rather than on every lookup.
    let normalized: [String]

    public init(_ spellings: String...) {
        self.spellings = spellings
        self.normalized = spellings.map(Self.normalize)
    }

    public init(stringLiteral: String) {
        self.init(stringLiteral)
    }

    /// Lowercase, `_`/`-` removed, trailing `[]` removed (PHP-style array names).
    public static func normalize(_ name: String) -> String {
        var bytes = Array(name.utf8)
        if bytes.count >= 2, bytes[bytes.count - 2] == UInt8(ascii: "["), bytes.last == UInt8(ascii: "]") {
            bytes.removeLast(2)
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for b in bytes where b != UInt8(ascii: "_") && b != UInt8(ascii: "-") {
            out.append((0x41...0x5A).contains(b) ? b | 0x20 : b)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

public struct DecodedField: Sendable, Equatable {
    /// The first spelling seen in the body.
    public let name: String
    /// Decoded values in arrival order, untrimmed.
    public let values: [String]
    /// True when a value's bytes were not valid in the body's charset (U+FFFD was substituted).
    public let isLossy: Bool

    public init(name: String, values: [String], isLossy: Bool) {
        self.name = name
        self.values = values
        self.isLossy = isLossy
    }
}

/// A form body decoded with one charset and indexed by normalized name.
public struct Fields: Sendable {
    public let all: [DecodedField]
    /// The charset the values were decoded with.
    public let charset: TextCharset
    private let index: [String: Int]

    public init(_ body: FormBody, charset: TextCharset) {
        self.charset = charset
        var all: [DecodedField] = []
        var index: [String: Int] = [:]
        all.reserveCapacity(body.pairs.count)
        index.reserveCapacity(body.pairs.count)
        // Each pair's name is decoded and normalized exactly once; PGs' names are ASCII, which
        // is normalized straight from the bytes.
        for pair in body.pairs {
            let (name, key) = Self.name(pair.name, charset: charset)
            let value = KoreanText.decode(pair.value, as: charset)
            if let i = index[key] {
                let field = all[i]
                all[i] = DecodedField(
                    name: field.name, values: field.values + [value.text], isLossy: field.isLossy || value.isLossy)
            } else {
                index[key] = all.count
                all.append(DecodedField(name: name, values: [value.text], isLossy: value.isLossy))
            }
        }
        self.all = all
        self.index = index
    }

    /// The name as the PG spelled it, and its normalized key.
    private static func name(_ bytes: [UInt8], charset: TextCharset) -> (String, String) {
        guard bytes.allSatisfy({ $0 < 0x80 }) else {
            let name = KoreanText.decode(bytes, as: charset).text
            return (name, FieldKey.normalize(name))
        }
        var end = bytes.count
        if end >= 2, bytes[end - 2] == UInt8(ascii: "["), bytes[end - 1] == UInt8(ascii: "]") { end -= 2 }
        let key = String(unsafeUninitializedCapacity: end) { buffer in
            var n = 0
            for b in bytes[..<end] where b != UInt8(ascii: "_") && b != UInt8(ascii: "-") {
                buffer[n] = (0x41...0x5A).contains(b) ? b | 0x20 : b
                n += 1
            }
            return n
        }
        return (String(decoding: bytes, as: UTF8.self), key)
    }

    /// The field for the first spelling of `key` that is present. Aliases are
    /// not merged: a body carrying both `OID` and `MOID` means two different
    /// things, and the key's order says which one we trust.
    private func field(_ key: FieldKey) -> DecodedField? {
        for spelling in key.normalized {
            if let i = index[spelling] { return all[i] }
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

    public func contains(_ key: FieldKey) -> Bool {
        field(key) != nil
    }

    /// The fields whose bytes were not valid in `charset`, by the name the PG used.
    public var lossyFieldNames: [String] {
        all.filter(\.isLossy).map(\.name)
    }

    static func trim(_ s: String) -> String {
        guard let first = s.unicodeScalars.first, let last = s.unicodeScalars.last,
            first.properties.isWhitespace || last.properties.isWhitespace
        else { return s }
        let scalars = s.unicodeScalars
            .drop(while: { $0.properties.isWhitespace })
            .reversed().drop(while: { $0.properties.isWhitespace }).reversed()
        return String(String.UnicodeScalarView(scalars))
    }
}

extension FieldKey {
    /// Spelled this way by TomatoPay and Smartro alike; `state_cd` is the real-traffic variant.
    public static let stateCd: FieldKey = FieldKey("StateCd", "state_cd")
    public static let orderID: FieldKey = FieldKey("OID", "MOID", "Moid")
}

extension Fields {
    /// A request body as the PG meant it: the charset its Content-Type declares, or `setting`
    /// when it declares none. Refuses what is not a form or names a charset Korean PGs do not use.
    public static func decoding(_ body: [UInt8], contentType: String?, charset setting: CharsetSetting)
        throws(Rejection) -> Fields
    {
        let contentType = contentType.map(ContentType.init)
        if let contentType, !contentType.isForm {
            throw Rejection(
                .unsupportedMediaType, "Content-Type \(contentType.mediaType) is not \(ContentType.formURLEncoded)")
        }
        let form = FormBody(parsing: body)
        if let label = contentType?.charsetLabel {
            guard let declared = TextCharset(label: label) else {
                throw Rejection(.unsupportedCharset, "charset \(label) is neither EUC-KR/CP949 nor UTF-8")
            }
            return Fields(form, charset: declared)
        }
        return Fields(form, charset: setting.resolve(for: form))
    }
}
