"""The release's images: where the app's source comes from, the registry and the builds
(ReleaseImages), and every image pinned by digest."""
