import Foundation
import Testing

@testable import PGNotiCore

@Suite struct JSONWriterTests {
    /// Whatever the writer emits must read back, through Foundation's reference decoder, as the
    /// value it was given.
    @Test(arguments: [
        "plain", "김똠순 뷁", "quote \" and backslash \\", "control \u{01}\u{08}\u{0C}\n\r\t\u{1F}", "\u{FFFD}",
        "slash / stays", "emoji 🙂", "",
    ])
    func stringsRoundTripThroughFoundation(text: String) throws {
        var json = JSONWriter()
        json.beginObject()
        json.member("s", text)
        json.member("n", 42)
        json.member("nil", String?.none)
        json.member("list", strings: [text, "x"])
        json.endObject()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
        #expect(object["s"] as? String == text)
        #expect(object["n"] as? Int == 42)
        #expect(object["nil"] is NSNull)
        #expect(object["list"] as? [String] == [text, "x"])
        #expect(!json.bytes.contains(0x0A), "one line")
    }

    @Test func nestingAndSeparators() throws {
        var json = JSONWriter()
        json.beginObject()
        json.key("a")
        json.beginArray()
        json.beginObject()
        json.member("x", 1)
        json.endObject()
        json.beginObject()
        json.endObject()
        json.int(3)
        json.endArray()
        json.key("b")
        json.double(1.5)
        json.key("c")
        json.double(.nan)
        json.member("d", true)
        json.endObject()
        #expect(String(decoding: json.bytes, as: UTF8.self) == #"{"a":[{"x":1},{},3],"b":1.5,"c":null,"d":true}"#)
    }
}
