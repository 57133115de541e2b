/// One `name=value` pair of a form body, kept as undecoded bytes because the
/// charset is only known later (Content-Type, PG configuration).
public struct FormPair: Sendable, Equatable {
    public let name: [UInt8]
    public let value: [UInt8]

    public init(name: [UInt8], value: [UInt8]) {
        self.name = name
        self.value = value
    }
}

/// An `application/x-www-form-urlencoded` body split into byte pairs.
///
/// Parsing is deliberately forgiving: PGs send raw EUC-KR bytes, stray `%`
/// signs and trailing newlines, and a notification we refuse to read is a
/// payment we lose. Decoding rules mirror PHP's `urldecode`, which most PG
/// sample code was written against.
public struct FormBody: Sendable, Equatable {
    /// Arrival order, repeated names kept (Innopay sends `goodsCodeArray[]` several times).
    public let pairs: [FormPair]

    public init(pairs: [FormPair]) {
        self.pairs = pairs
    }

    public init(parsing bytes: some Sequence<UInt8>) {
        self.init(parsing: Array(bytes))
    }

    /// The body as received, without copying it: pairs are cut from slices of it.
    public init(parsing bytes: [UInt8]) {
        var body = bytes[...]
        // Some PG HTTP clients terminate the body with CR/LF; it is not part of the last value.
        while let last = body.last, last == 0x0D || last == 0x0A {
            body.removeLast()
        }

        var pairs: [FormPair] = []
        for segment in body.split(separator: 0x26 /* & */, omittingEmptySubsequences: true) {
            let name: ArraySlice<UInt8>
            let value: ArraySlice<UInt8>
            if let eq = segment.firstIndex(of: 0x3D /* = */) {
                name = segment[segment.startIndex..<eq]
                value = segment[segment.index(after: eq)...]
            } else {
                name = segment
                value = []
            }
            pairs.append(FormPair(name: Self.unescape(name), value: Self.unescape(value)))
        }
        self.pairs = pairs
    }

    static func unescape(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == 0x2B /* + */ {
                out.append(0x20)
                i += 1
            } else if b == 0x25 /* % */, bytes.endIndex - i >= 3,
                let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2])
            {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                // Includes a `%` without two hex digits: kept literally, as PHP does.
                out.append(b)
                i += 1
            }
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}
