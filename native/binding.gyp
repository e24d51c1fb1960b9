# The optional native data plane (src/engine loads it if it built; see scripts/build-native.mjs).
# In native/, not at the repository root, so npm does not run node-gyp on its own: the install
# step decides, and never fails the install.
{
  "variables": { "sanitize%": 0 },
  "targets": [
    {
      "target_name": "portpub_engine",
      "sources": ["engine.c", "tcp.c", "tcp-accept.c", "udp.c", "udp-life.c", "napi.c", "napi-udp.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2", "-fno-strict-aliasing", "-fvisibility=hidden"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }],
        ["sanitize==1", {
          "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
