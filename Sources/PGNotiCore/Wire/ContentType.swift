/// A request's `Content-Type`, read once: the media type and the `charset` parameter.
public struct ContentType: Sendable, Equatable {
    /// Lowercased, e.g. `application/x-www-form-urlencoded`; empty when the header was empty.
    public let mediaType: String
    /// The raw `charset` parameter (`euc-kr`, `"UTF-8"` unquoted), nil when absent or empty.
    public let charsetLabel: String?

    public init(_ header: String) {
        var parts = header.split(separator: ";", omittingEmptySubsequences: false)[...]
        mediaType = parts.popFirst().map { Self.trim($0).lowercased() } ?? ""
        var label: String?
        // The first segment is the media type itself, never a parameter.
        for param in parts {
            guard let eq = param.firstIndex(of: "=") else { continue }
            guard Self.trim(param[param.startIndex..<eq]).lowercased() == "charset" else { continue }
            var value = Self.trim(param[param.index(after: eq)...])
            if value.count >= 2, value.first == "\"", value.last == "\"" {
                value = String(value.dropFirst().dropLast())
            }
            label = value.isEmpty ? nil : value
            break
        }
        charsetLabel = label
    }

    public static let formURLEncoded = "application/x-www-form-urlencoded"

    /// PGs post forms; an absent or empty media type is taken as one (some send none).
    public var isForm: Bool { mediaType.isEmpty || mediaType == Self.formURLEncoded }

    static func trim(_ s: Substring) -> String {
        let scalars = s.unicodeScalars
            .drop(while: { $0.properties.isWhitespace })
            .reversed().drop(while: { $0.properties.isWhitespace }).reversed()
        return String(String.UnicodeScalarView(scalars))
    }
}
