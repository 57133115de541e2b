import Foundation
import Testing

@testable import PGNotiCore

/// The seed's sample files (fixtures/toss, corrections in its README), read the way the inbox
/// will read them: split into lines, each line submitted as a row with the file's format.
@Suite struct TossPaymentsTests {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/toss")

    static func file(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: folder.appendingPathComponent(path)))
    }

    let toss = TossPayments()

    /// One row read as the intake reads a submission: `fields(from:contentType:)`, then `interpret`.
    func read(_ row: [UInt8], _ kind: TossFile.Kind, _ delimiter: TossFile.Delimiter = .semicolon) throws(Rejection)
        -> PaymentNotification
    {
        let contentType = TossPayments.RowFormat(kind: kind, delimiter: delimiter).contentType
        return try toss.interpret(toss.fields(from: row, contentType: contentType))
    }

    /// Every line of a fixture file, with what reading it gave.
    func readAll(_ path: String) throws -> [(TossFile.Line, Result<PaymentNotification, Rejection>)] {
        let bytes = try Self.file(path)
        let name = try #require(TossFile.Name(fileName: URL(fileURLWithPath: path).lastPathComponent))
        let delimiter = try #require(TossFile.delimiter(of: bytes))
        return TossFile.lines(in: bytes).lines.map { line in
            (line, Result { () throws(Rejection) in try read(line.bytes, name.kind, delimiter) })
        }
    }

    @Test func fixturesAreCP949() throws {
        let auth = try Self.file("toss_AUTH_20070706.dat")
        let rev = try Self.file("toss_REV_20070706.dat")
        #expect(auth.firstRange(of: [0xB1, 0xB9, 0xB9, 0xCE] as [UInt8]) != nil, "국민 in CP949")
        #expect(rev.firstRange(of: [0xB7, 0xD4, 0xB5, 0xA5] as [UInt8]) != nil, "롯데 in CP949")
        #expect(String(validating: auth, as: UTF8.self) == nil)
    }

    @Test func everyAuthSampleRowIsAnApproval() throws {
        let rows = try readAll("toss_AUTH_20070706.dat")
        #expect(rows.map(\.0.number) == [1, 2, 3, 4])
        let notifications = try rows.map { try $0.1.get() }
        #expect(notifications.allSatisfy { $0.kind == .paymentApproved && $0.state == "10" })
        #expect(
            notifications.map(\.key)
                == [
                    "toss2007070623592792192", "toss2007070623571812279", "toss2007070623433532130",
                    "toss2007070623383531154",
                ].map { NotificationKey(provider: .toss, merchantID: "toss", tid: $0, state: "10") })
        #expect(notifications.map(\.payMethod) == ["CARD", "CARD", "BANK", "BANK"])
        #expect(
            notifications.map(\.orderID) == [
                "Toss_20070706235709_uytr120", "Toss_20070706235648_zzangg1", "Toss_20070706233932_judy1876",
                "Toss_20070706233735_kihote128",
            ])
        #expect(notifications.map(\.amount) == [15000, 35000, 319000, 91000])
    }

    @Test func anAuthCardRowMapsEveryField() throws {
        let rows = try readAll("toss_AUTH_20070706.dat")
        let fields = try toss.fields(
            from: rows[0].0.bytes,
            contentType: TossPayments.RowFormat(kind: .auth, delimiter: .semicolon).contentType)
        #expect(
            fields.all.map { "\($0.name)=\($0.values[0])" } == [
                "mid=toss", "paytype=SC0010", "transaction=toss2007070623592792192",
                "oid=Toss_20070706235709_uytr120", "financecode=11100", "financename=국민", "buyerid=uytr120",
                "amount=15000", "useescrow=N", "paydate=20070706235927", "authnumber=30017594", "status=10",
            ])
        #expect(fields.charset == .cp949)
        #expect(fields.lossyFieldNames.isEmpty)

        let n = try rows[0].1.get()
        #expect(n.provider == .toss)
        #expect(n.merchantID == "toss")
        #expect(n.tid == "toss2007070623592792192")
        #expect(n.state == "10")
        #expect(n.kind == .paymentApproved)
        #expect(n.orderID == "Toss_20070706235709_uytr120")
        #expect(n.amount == 15000)
        #expect(n.payMethod == "CARD")
        #expect(n.resultCode == "10")
        #expect(n.approvedAt == "2007-07-06T23:59:27+09:00")
        #expect(n.canceledAt == nil)
        #expect(n.card == CardDetails(issuerCode: "11100", issuerName: "국민", approvalNumber: "30017594"))
        #expect(n.bank == nil)
        #expect(n.buyer == Buyer(userID: "uytr120"))
        #expect(n.rawFields.count == 12)
        #expect(n.fingerprint == "amount=15000;result=10")
    }

    @Test func anAccountTransferRowHasABankAndNoApprovalNumber() throws {
        let n = try readAll("toss_AUTH_20070706.dat")[2].1.get()
        #expect(n.payMethod == "BANK")
        #expect(n.bank == BankDetails(code: "88", name: "신한"))
        #expect(n.card == nil)
        #expect(n.amount == 319000)
        #expect(n.buyer.userID == "judy1876")
        #expect(n.approvedAt == "2007-07-06T23:43:35+09:00")
    }

    @Test func revSampleRowsAreCancelsExceptTheOneWithoutStatus() throws {
        let rows = try readAll("toss_REV_20070706.dat")
        #expect(rows.map(\.0.number) == [1, 2, 3, 4])
        let states = rows.map { (try? $0.1.get())?.state }
        #expect(
            states == [
                "20:20070706235355:115000", "20:20070706233413:97000", nil, "20:20070706230714:16000",
            ])
        for (_, result) in rows {
            guard let n = try? result.get() else { continue }
            #expect(n.kind == .paymentCanceled)
            #expect(n.resultCode == "20")
            #expect(n.approvedAt == nil)
        }
        #expect(try rows[1].1.get().card?.issuerName == "비씨")
        #expect(try rows[3].1.get().card?.issuerName == "롯데")
    }

    /// §1.6 prints row 3 with an empty Status; the decision (TossPayments.interpret) is to refuse
    /// it until a later push says what happened.
    @Test func theRevRowWithAnEmptyStatusIsRefused() throws {
        let rows = try readAll("toss_REV_20070706.dat")
        #expect(rows[2].0.number == 3)
        #expect(throws: Rejection.self) { try rows[2].1.get() }
        guard case .failure(let rejection) = rows[2].1 else { return }
        #expect(rejection.reason == .invalidField)
        #expect(rejection.detail.contains("Status is empty"))
        #expect(rejection.detail.contains("later push"))
        // The HTTP section's copy of the same row carries 20, and that reads.
        let withStatus = rows[2].0.bytes + Array("20".utf8)
        let n = try read(withStatus, .rev)
        #expect(n.kind == .paymentCanceled)
        #expect(n.tid == "toss2007070400463873636")
        #expect(n.state == "20:20070706230726:29000")
    }

    @Test func aRevCardRowMapsEveryField() throws {
        let n = try readAll("toss_REV_20070706.dat")[0].1.get()
        #expect(n.provider == .toss)
        #expect(n.merchantID == "toss")
        #expect(n.tid == "toss2007070623455691939")
        #expect(n.kind == .paymentCanceled)
        #expect(n.state == "20:20070706235355:115000")
        #expect(n.orderID == "Toss_20070706234324_kwj88")
        #expect(n.amount == 115000)
        #expect(n.payMethod == "CARD")
        #expect(n.resultCode == "20")
        #expect(n.canceledAt == "2007-07-06T23:53:55+09:00")
        #expect(n.approvedAt == nil)
        #expect(n.card == CardDetails(issuerCode: "61100", issuerName: "현대", approvalNumber: "00176594"))
        #expect(n.buyer.userID == "kwj88")
        #expect(n.rawFields.map(\.name)[9] == "refunddate")
        #expect(n.rawFields.first { $0.name == "useescrow" }?.values == ["N"])
    }

    @Test func commaDelimitedFileReadsLikeTheSemicolonOne() throws {
        let comma = try Self.file("comma-delimited/toss_AUTH_20070706.dat")
        let semicolon = try Self.file("toss_AUTH_20070706.dat")
        #expect(TossFile.delimiter(of: comma) == .comma)
        #expect(TossFile.delimiter(of: semicolon) == .semicolon)
        let a = try readAll("comma-delimited/toss_AUTH_20070706.dat").map { try $0.1.get() }
        let b = try readAll("toss_AUTH_20070706.dat").map { try $0.1.get() }
        #expect(a.map(\.key) == b.map(\.key))
        #expect(a.map(\.card) == b.map(\.card))
        #expect(a.count == 4)
    }

    @Test func delimiterDetection() {
        // A `;` row whose values hold commas still splits into twelve on `;`.
        let semicolonWithCommas = Array("m;SC0010;t;o,1;1;a,b;u;1000;N;20070706235927;1;10\n".utf8)
        #expect(TossFile.delimiter(of: semicolonWithCommas) == .semicolon)
        // Twelve either way: the samples' `;` wins.
        let tie = Array("a;b,c;d,e;f,g;h,i;j,k;l,m;n,o;p,q;r,s;t,u;v,w\n".utf8)
        #expect(TossFile.delimiter(of: tie) == .semicolon)
        // A corrupt first line does not decide; the first well-formed one does.
        let corruptFirst = Array("\n\nbroken,line\nm,SC0010,t,o,1,a,u,1000,N,20070706235927,1,10\n".utf8)
        #expect(TossFile.delimiter(of: corruptFirst) == .comma)
        #expect(TossFile.delimiter(of: Array("nothing here\n".utf8)) == nil)
        #expect(TossFile.delimiter(of: []) == nil)
    }

    @Test func bothDateFormatsRead() throws {
        func row(_ date: String, _ kind: TossFile.Kind) -> [UInt8] {
            Array("m;SC0010;T1;O1;11100;x;u;1000;N;\(date);123;\(kind == .auth ? "10" : "20")".utf8)
        }
        #expect(try read(row("20070706235927", .auth), .auth).approvedAt == "2007-07-06T23:59:27+09:00")
        #expect(try read(row("2007-07-06 23:59:27", .auth), .auth).approvedAt == "2007-07-06T23:59:27+09:00")
        let compact = try read(row("20070706235927", .rev), .rev)
        let separated = try read(row("2007-07-06 23:59:27", .rev), .rev)
        #expect(compact.canceledAt == "2007-07-06T23:59:27+09:00")
        #expect(separated.canceledAt == compact.canceledAt)
        // The same refund pushed in either format is the same refund.
        #expect(separated.key == compact.key)
        #expect(compact.state == "20:20070706235927:1000")
        #expect(throws: Rejection.self) { try read(row("2007-13-06 23:59:27", .rev), .rev) }
    }

    @Test func fileNames() {
        #expect(
            TossFile.Name(fileName: "toss_AUTH_20070706.dat")
                == TossFile.Name(merchantID: "toss", kind: .auth, date: "20070706"))
        #expect(TossFile.Name(fileName: "toss_REV_20070706.dat")?.kind == .rev)
        let underscored = TossFile.Name(fileName: "my_shop_01_REV_20240229.dat")
        #expect(underscored == TossFile.Name(merchantID: "my_shop_01", kind: .rev, date: "20240229"))
        #expect(underscored?.fileName == "my_shop_01_REV_20240229.dat")
        for bad in [
            "toss_AUTH_20070706.txt", "toss_AUTH_20070706", "_AUTH_20070706.dat", "toss_auth_20070706.dat",
            "toss_TRX_20070706.dat", "toss_AUTH_2007070.dat", "toss_AUTH_20071306.dat", "toss_AUTH_2007O706.dat",
            "AUTH_20070706.dat", "toss_AUTH_20070706.dat.part", "toss_REV_.dat",
        ] {
            #expect(TossFile.Name(fileName: bad) == nil, "\(bad)")
        }
    }

    @Test func aCorruptLineIsReportedWithItsNumberWhileItsNeighboursRead() throws {
        let rows = try readAll("corrupt-line/toss_AUTH_20070706.dat")
        #expect(rows.map(\.0.number) == [1, 2, 3, 4])
        let bad = rows.filter { (try? $0.1.get()) == nil }
        #expect(bad.map(\.0.number) == [3])
        guard case .failure(let rejection) = bad.first?.1 else { return }
        #expect(rejection.reason == .invalidField)
        #expect(rejection.detail.contains("12 fields"))
        #expect(rejection.detail.contains("11"))
        let good = rows.compactMap { try? $0.1.get() }
        #expect(good.map(\.tid) == ["toss2007070623592792192", "toss2007070623571812279", "toss2007070623383531154"])
    }

    @Test func crlfLinesReadLikeLfLines() throws {
        let lf = try Self.file("toss_REV_20070706.dat")
        var crlf: [UInt8] = []
        for b in lf { crlf += b == 0x0A ? [0x0D, 0x0A] : [b] }
        let a = TossFile.lines(in: lf).lines
        let b = TossFile.lines(in: crlf).lines
        #expect(a.map(\.bytes) == b.map(\.bytes))
        #expect(b.allSatisfy { $0.bytes.last != 0x0D && $0.isTerminated })
        #expect(TossFile.delimiter(of: crlf) == .semicolon)
        let keys = b.compactMap { line in try? read(line.bytes, .rev) }.map(\.key)
        let lfKeys = a.compactMap { line in try? read(line.bytes, .rev) }.map(\.key)
        #expect(keys == lfKeys && keys.count == 3)
        // A row submitted with its terminator still has twelve fields.
        #expect(try read(b[0].bytes + [0x0D, 0x0A], .rev).key == keys[0])
    }

    @Test func twoPartialRefundsOfOneTransactionKeepApart() throws {
        let first = Array("toss;SC0030;T9;O9;88;x;u;10000;N;20070706101010;0;20".utf8)
        let laterSameAmount = Array("toss;SC0030;T9;O9;88;x;u;10000;N;20070706121212;0;20".utf8)
        let sameTimeOtherAmount = Array("toss;SC0030;T9;O9;88;x;u;5000;N;20070706101010;0;20".utf8)
        let keys = try [first, laterSameAmount, sameTimeOtherAmount].map { try read($0, .rev).key }
        #expect(Set(keys.map(\.tid)) == ["T9"])
        #expect(Set(keys).count == 3)
    }

    @Test func theSameRowReadTwiceHasTheSameKey() throws {
        let rows = try Self.file("toss_REV_20070706.dat")
        let once = TossFile.lines(in: rows).lines.compactMap { try? read($0.bytes, .rev) }
        // The next push carries the whole day again, plus a new row.
        let grown = rows + Array("toss;SC0030;T2;O2;88;x;u;1000;N;20070706235959;0;20\n".utf8)
        let twice = TossFile.lines(in: grown).lines.compactMap { try? read($0.bytes, .rev) }
        #expect(Array(twice.prefix(once.count)).map(\.key) == once.map(\.key))
        #expect(Array(twice.prefix(once.count)).map(\.fingerprint) == once.map(\.fingerprint))
        #expect(twice.count == once.count + 1)
    }

    @Test func splittingFromAnOffsetReturnsOnlyLaterLines() throws {
        let first = try Self.file("toss_AUTH_20070706.dat")
        let read1 = TossFile.lines(in: first)
        #expect(read1.lines.count == 4)
        #expect(read1.next == TossFile.Position(offset: first.count, lineNumber: 5))
        #expect(read1.lines.map(\.end).last == first.count)
        for line in read1.lines { #expect(Array(first[line.range]) == line.bytes) }

        let grown = first + Array("\r\n  \nm;SC0010;T5;O5;1;x;u;1;N;20070706235959;1;10\n".utf8)
        let read2 = TossFile.lines(in: grown, from: read1.next)
        #expect(read2.lines.map(\.number) == [7])
        #expect(read2.lines.first?.bytes == Array("m;SC0010;T5;O5;1;x;u;1;N;20070706235959;1;10".utf8))
        #expect(read2.next == TossFile.Position(offset: grown.count, lineNumber: 8))
        // Nothing new: nothing returned, and the position stays.
        #expect(TossFile.lines(in: grown, from: read2.next) == TossFile.Lines(lines: [], next: read2.next))
    }

    @Test func anUnterminatedLastLineIsFlaggedAndNotPassed() throws {
        let whole = try Self.file("toss_AUTH_20070706.dat")
        // The push is still being written: the last row has no newline yet, and is cut short.
        let partial = Array(whole.dropLast(10))
        let read1 = TossFile.lines(in: partial)
        #expect(read1.lines.count == 4)
        #expect(read1.lines.prefix(3).allSatisfy { $0.isTerminated })
        let last = try #require(read1.lines.last)
        #expect(!last.isTerminated)
        #expect(last.number == 4)
        #expect(last.end == partial.count)
        #expect(last.following == TossFile.Position(offset: partial.count, lineNumber: 5))
        // Resuming re-reads the unfinished line, whole this time.
        #expect(read1.next == TossFile.Position(offset: last.range.lowerBound, lineNumber: 4))
        let read2 = TossFile.lines(in: whole, from: read1.next)
        #expect(read2.lines.map(\.number) == [4])
        #expect(read2.lines.first?.isTerminated == true)
        #expect(try read(read2.lines[0].bytes, .auth).tid == "toss2007070623383531154")
    }

    @Test func rowFormatIsCarriedByTheContentType() throws {
        let format = TossPayments.RowFormat(kind: .rev, delimiter: .comma)
        #expect(format.contentType == "application/vnd.pgnoti.toss-row; kind=REV; delimiter=comma")
        #expect(try TossPayments.RowFormat(contentType: format.contentType) == format)
        #expect(
            try TossPayments.RowFormat(contentType: "Application/Vnd.Pgnoti.Toss-Row;Delimiter=\"semicolon\";KIND=auth")
                == TossPayments.RowFormat(kind: .auth, delimiter: .semicolon))
        for bad in [
            nil, "application/x-www-form-urlencoded", "application/vnd.pgnoti.toss-row",
            "application/vnd.pgnoti.toss-row; kind=TRX; delimiter=comma",
            "application/vnd.pgnoti.toss-row; kind=AUTH; delimiter=tab",
        ] {
            #expect(throws: Rejection.self) { try TossPayments.RowFormat(contentType: bad) }
            do {
                _ = try toss.fields(from: Array("a;b".utf8), contentType: bad)
                Issue.record("\(bad ?? "nil") accepted")
            } catch {
                #expect(error.reason == .unsupportedMediaType)
            }
        }
    }

    @Test func statusesAreCheckedAgainstTheFileKind() throws {
        func row(_ status: String) -> [UInt8] { Array("m;SC0040;T;O;04;x;u;1000;N;20070706235927;0;\(status)".utf8) }
        #expect(try read(row("11"), .auth).kind == .paymentFailed)
        #expect(try read(row("21"), .rev).kind == .refundFailed)
        #expect(try read(row("21"), .rev).payMethod == "VBANK")
        for (status, kind) in [("20", TossFile.Kind.auth), ("10", .rev), ("99", .auth), ("1", .rev)] {
            do {
                _ = try read(row(status), kind)
                Issue.record("Status \(status) in \(kind) accepted")
            } catch {
                #expect(error.reason == .invalidField)
            }
        }
    }

    @Test func payTypesAndAmounts() throws {
        func row(_ paytype: String, amount: String = "1000") -> [UInt8] {
            Array("m;\(paytype);T;O;04;x;u;\(amount);N;20070706235927;0;10".utf8)
        }
        let methods = try ["SC0010", "SC0030", "SC0040", "SC0060", "SC0070", "SC0111", "SC0112", "SC9999"].map {
            try read(row($0), .auth).payMethod
        }
        #expect(methods == ["CARD", "BANK", "VBANK", "CELLPHONE", "PHONEBILL", "GIFT_CULTURE", "GIFT_GAME", "SC9999"])
        #expect(try read(row("SC0010"), .auth).card?.approvalNumber == nil, "authnumber 0 is no number")
        for amount in ["12a", "-5", ""] {
            #expect(throws: Rejection.self) { try read(row("SC0010", amount: amount), .auth) }
        }
    }

    @Test func providerShape() {
        #expect(toss.id == .toss)
        #expect(toss.ackBody == "")
        #expect(toss.charset == .cp949)
        #expect(!ProviderID.toss.postsNotifications)
        #expect(!ProviderID.payup.postsNotifications)
        #expect(ProviderID.smartro.postsNotifications)
    }

    /// Issue 14, fault 3: a date that is not one is refused, in either kind, never filed as an
    /// event with a null time.
    @Test func datesThatAreNotDatesAreRefused() throws {
        func row(_ date: String, _ kind: TossFile.Kind) -> [UInt8] {
            Array("m;SC0010;T1;O1;11100;x;u;1000;N;\(date);123;\(kind == .auth ? "10" : "20")".utf8)
        }
        for kind in TossFile.Kind.allCases {
            for date in [
                "garbage", "20071306235927", "20070230120000", "20070706240000", "20070706236000",
                "2007070623592", "070706235927", "2007/07/06 23:59:27", "2007-07-06T23:59:27", "", "20070706",
            ] {
                do {
                    let n = try read(row(date, kind), kind)
                    Issue.record("\(kind) date \(date) filed: \(n.approvedAt ?? n.canceledAt ?? "nil")")
                } catch {
                    #expect(error.reason == (date.isEmpty ? .missingField : .invalidField), "\(date)")
                    #expect(error.detail.contains(kind == .auth ? "paydate" : "refunddate"), "\(error.detail)")
                }
            }
        }
        // 29 February only in a leap year.
        #expect(try read(row("20080229120000", .auth), .auth).approvedAt == "2008-02-29T12:00:00+09:00")
        #expect(throws: Rejection.self) { try read(row("20070229120000", .auth), .auth) }
        #expect(KoreanTime.fromCompact("20070631120000") == nil, "no 31 June, whoever asks")
    }

    @Test func amountsAreWholeWonInDigitsOnly() throws {
        func row(_ amount: String) -> [UInt8] { Array("m;SC0010;T;O;04;x;u;\(amount);N;20070706235927;0;10".utf8) }
        #expect(try read(row("15000"), .auth).amount == 15000)
        #expect(try read(row("0"), .auth).amount == 0)
        for amount in ["+1000", "1,000", "1.5", "1e3", "0x10", "１０００", "9999999999999999", "12a", "-5"] {
            do {
                _ = try read(row(amount), .auth)
                Issue.record("amount \(amount) accepted")
            } catch {
                #expect(error.reason == .invalidField && error.detail.contains("amount"), "\(amount)")
            }
        }
        #expect(throws: Rejection.self) { try read(row(""), .auth) }
    }

    /// Issue 14, fault 3: a UTF-8 byte order mark before the first row is the file's, not the
    /// MID's: cut off when the file is split, and from a row submitted with one.
    @Test func aByteOrderMarkIsNoPartOfTheFirstRow() throws {
        let plain = try Self.file("toss_AUTH_20070706.dat")
        let marked = TossFile.byteOrderMark + plain
        let lines = TossFile.lines(in: marked)
        #expect(lines.lines.map(\.bytes) == TossFile.lines(in: plain).lines.map(\.bytes))
        #expect(lines.lines.first?.number == 1 && lines.lines.first?.range.lowerBound == 3)
        #expect(lines.next.offset == marked.count)
        #expect(TossFile.delimiter(of: marked) == .semicolon)
        let row = try #require(TossFile.lines(in: plain).lines.first).bytes
        #expect(try read(TossFile.byteOrderMark + row, .auth).merchantID == "toss")
        // Only at the very start of the file: resuming mid-file cuts nothing.
        let resumed = TossFile.lines(
            in: marked, from: TossFile.Position(offset: lines.lines[1].range.lowerBound, lineNumber: 2))
        #expect(resumed.lines.map(\.number) == [2, 3, 4])
    }

    @Test func aFileNameDayMustExist() {
        #expect(TossFile.Name(fileName: "toss_AUTH_20070231.dat") == nil)
        #expect(TossFile.Name(fileName: "toss_AUTH_20080229.dat") != nil)
        #expect(TossFile.Name(fileName: "toss_AUTH_20070229.dat") == nil)
    }
}
