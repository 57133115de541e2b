// libFuzzer targets for the pure core. Compiled together with Sources/PGNotiCore into one
// binary by fuzz/run.sh; PGNOTI_FUZZ_TARGET picks the target. Each target checks the
// invariants the daemon relies on, not just "does not crash".

#if canImport(Glibc)
    import Glibc
#endif

private let target = getenv("PGNOTI_FUZZ_TARGET").map { String(cString: $0) } ?? "form"

private let smartro = Smartro(
    merchantKeys: [
        "SMTPAY001m": SecretValues([
            "0/4GFsSd7ERVRGX9WHOzJ96GyeMTwvIaKSWUCKmN3fDklNRGw3CualCFoMPZaS99YiFGOuwtzTkrLo4bR4V+Ow=="
        ])
    ])
private let providers: [String: any PaymentProvider] = [
    "smartro": smartro, "tomatopay": TomatoPay(), "innopay": Innopay(), "toss": TossPayments(), "payup": Payup(),
]

/// The content types each provider reads: a form (declared or not), a Toss row of either kind
/// and delimiter, a Payup document.
private let contentTypes: [String: [String?]] = [
    "toss": TossFile.Kind.allCases.flatMap { kind in
        TossFile.Delimiter.allCases.map { TossPayments.RowFormat(kind: kind, delimiter: $0).contentType }
    },
    "payup": [Payup.mediaType],
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    switch target {
    case "form": fuzzForm(bytes)
    case "cp949": fuzzCP949(bytes)
    case "fields": fuzzFields(bytes)
    default:
        guard let provider = providers[target] else { fatalError("unknown PGNOTI_FUZZ_TARGET \(target)") }
        fuzzProvider(provider, bytes)
    }
    return 0
}

/// Form decoding: every pair comes from the bytes, nothing is invented.
private func fuzzForm(_ bytes: [UInt8]) {
    let body = FormBody(parsing: bytes)
    let total = body.pairs.reduce(0) { $0 + $1.name.count + $1.value.count }
    precondition(total <= bytes.count, "decoding never grows the body")
    for charset in TextCharset.allCases { _ = Fields(body, charset: charset) }
}

/// CP949 decoding: valid UTF-8 out, and lossy exactly when something was replaced.
private func fuzzCP949(_ bytes: [UInt8]) {
    let decoded = KoreanText.decode(bytes, as: .cp949)
    precondition(String(validating: Array(decoded.text.utf8), as: UTF8.self) != nil)
    // CP949 maps nothing to U+FFFD, so one in the output is always a replacement we made.
    precondition(decoded.isLossy == decoded.text.unicodeScalars.contains("\u{FFFD}"))
    if bytes.allSatisfy({ $0 < 0x80 }) { precondition(!decoded.isLossy && decoded.text.utf8.elementsEqual(bytes)) }
    _ = KoreanText.decode(bytes, as: .utf8)
}

/// Field lookup: any spelling of a present name finds it; values trimmed, blanks absent.
private func fuzzFields(_ bytes: [UInt8]) {
    let fields = Fields(FormBody(parsing: bytes), charset: .cp949)
    for field in fields.all {
        let key = FieldKey(field.name)
        precondition(fields.contains(key))
        precondition(fields.values(key).count == field.values.count)
        if let value = fields[key] { precondition(!value.isEmpty) }
        _ = FieldKey(field.name.uppercased())
    }
    _ = fields[.stateCd]
    _ = fields[.orderID]
    _ = CharsetSetting.auto.resolve(for: FormBody(parsing: bytes))
}

/// A provider reads any body without trapping, the way the intake does (its own
/// `fields(from:contentType:)`), and a notification it returns is well formed.
private func fuzzProvider(_ provider: any PaymentProvider, _ bytes: [UInt8]) {
    let types =
        contentTypes[provider.id.rawValue]
        ?? [
            nil, "application/x-www-form-urlencoded; charset=euc-kr",
            "application/x-www-form-urlencoded; charset=utf-8",
        ]
    for contentType in types {
        guard let fields = try? provider.fields(from: bytes, contentType: contentType),
            let notification = try? provider.interpret(fields)
        else { continue }
        precondition(!notification.tid.isEmpty && !notification.state.isEmpty)
        precondition(notification.provider == provider.id)
        // A Payup document's card data never becomes a field, whatever the body holds. (The
        // notify PGs post masked card numbers as fields of their own; that is theirs to send.)
        if provider.id == .payup {
            precondition(!fields.all.contains { ["cardno", "cardpw"].contains(FieldKey.normalize($0.name)) })
        }
        _ = try? provider.verify(notification, fields)
        let event = Event(notification: notification, receivedAt: .init(timeIntervalSince1970: 0))
        precondition(!event.jsonBytes().isEmpty)
    }
}
