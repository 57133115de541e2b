import Testing

@testable import PGNotiCore

@Test func md5KnownVectors() {
    #expect(Digest.hex(Digest.md5([UInt8]())) == "d41d8cd98f00b204e9800998ecf8427e")
    #expect(Digest.hex(Digest.md5(Array("abc".utf8))) == "900150983cd24fb0d6963f7d28e17f72")
    // python3: hashlib.md5('한글'.encode('cp949')).hexdigest()
    #expect(Digest.hex(Digest.md5([0xC7, 0xD1, 0xB1, 0xDB])) == "fd2a2a55c7fc6b96d3aad609c7d84118")
}

@Test func sha256KnownVectors() {
    #expect(
        Digest.hex(Digest.sha256(Array("abc".utf8)))
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(
        Digest.hex(Digest.sha256([UInt8]()))
            == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(Digest.sha256("abc".utf8).count == 32)
}

@Test func digestsAcceptSlices() {
    let bytes = Array("xabcx".utf8)
    #expect(Digest.md5(bytes[1..<4]) == Digest.md5(Array("abc".utf8)))
}

@Test func hexIsLowercase() {
    #expect(Digest.hex([0x00, 0x0F, 0xAB, 0xFF]) == "000fabff")
    #expect(Digest.hex([]) == "")
}

@Test func constantTimeEqualsComparesContentAndLength() {
    #expect(constantTimeEquals([1, 2, 3], [1, 2, 3]))
    #expect(!constantTimeEquals([1, 2, 3], [1, 2, 4]))
    #expect(!constantTimeEquals([1, 2, 3], [1, 2]))
    #expect(!constantTimeEquals([], [0]))
    #expect(constantTimeEquals([], []))
}
