/// The release, for `--version`, the User-Agent of outgoing requests and `pgnoti_build_info`.
public enum PGNotiVersion {
    public static let current = "0.3.0"
}
