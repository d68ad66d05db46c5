# A zip archive written in R itself (no zip program: utils::zip needs one, which Windows
# lacks without Rtools): each file deflated by R's own zlib as one gzip member (gzfile),
# whose deflate stream and CRC-32 are the zip entry's; every entry a plain file dated
# 1980-01-01, so the same files make the same archive.

crc_table <- local({
  table <- NULL
  function() {
    if (is.null(table)) {
      poly <- rawToBits(as.raw(c(0x20, 0x83, 0xB8, 0xED)))  # 0xEDB88320, low bit first
      table <<- t(vapply(0:255, function(n) {
        bits <- rawToBits(as.raw(c(n, 0, 0, 0)))
        for (k in 1:8) {
          low <- bits[[1L]]
          bits <- c(bits[-1L], as.raw(0))
          if (low == as.raw(1)) bits <- xor(bits, poly)
        }
        packBits(bits, "raw")
      }, raw(4)))
    }
    table
  }
})

crc32 <- function(data) {
  table <- crc_table()
  crc <- as.raw(c(0xFF, 0xFF, 0xFF, 0xFF))  # little-endian
  zero <- as.raw(0)
  for (byte in as.integer(data)) {
    crc <- xor(c(crc[2:4], zero), table[as.integer(xor(crc[[1L]], as.raw(byte))) + 1L, ])
  }
  xor(crc, as.raw(c(0xFF, 0xFF, 0xFF, 0xFF)))
}

gzip_member <- function(data) {
  # the deflate stream and CRC-32 (little-endian) of `data`, from a gzip member zlib wrote:
  # 10 bytes of header (no name, no extra fields), the stream, CRC-32 and size
  path <- tempfile(fileext = ".gz")
  on.exit(unlink(path))
  con <- gzfile(path, "wb")
  writeBin(data, con)
  close(con)
  member <- readBin(path, "raw", file.size(path))
  n <- length(member)
  if (n < 18L || !identical(member[1:4], as.raw(c(0x1F, 0x8B, 0x08, 0x00)))) {
    return(list(deflated = NULL, crc = crc32(data)))  # another header: R computes the CRC
  }
  list(deflated = member[11:(n - 8L)], crc = member[(n - 7L):(n - 4L)])
}

le <- function(value, size) writeBin(as.integer(value), raw(), size = size, endian = "little")

zip_files <- function(folder, paths) {
  locals <- list()
  centrals <- list()
  offset <- 0
  for (path in paths) {
    data <- readBin(file.path(folder, path), "raw", file.size(file.path(folder, path)))
    method <- 0L
    stored <- data
    crc <- as.raw(c(0, 0, 0, 0))
    if (length(data)) {
      gz <- gzip_member(data)
      crc <- gz$crc
      if (!is.null(gz$deflated) && length(gz$deflated) < length(data)) {
        method <- 8L
        stored <- gz$deflated
      }
    }
    name <- charToRaw(enc2utf8(path))
    shared <- c(le(20L, 2), le(0x0800L, 2), le(method, 2), le(0L, 2), le(33L, 2),
                crc, le(length(stored), 4), le(length(data), 4),
                le(length(name), 2), le(0L, 2))
    local <- c(as.raw(c(0x50, 0x4B, 0x03, 0x04)), shared, name, stored)
    centrals[[path]] <- c(as.raw(c(0x50, 0x4B, 0x01, 0x02)), le(20L, 2), shared,
                          le(0L, 2), le(0L, 2), le(0L, 2), le(0L, 4), le(offset, 4), name)
    locals[[path]] <- local
    offset <- offset + length(local)
  }
  directory <- unlist(centrals, use.names = FALSE)
  end <- c(as.raw(c(0x50, 0x4B, 0x05, 0x06)), le(0L, 2), le(0L, 2),
           le(length(paths), 2), le(length(paths), 2), le(length(directory), 4),
           le(offset, 4), le(0L, 2))
  c(unlist(locals, use.names = FALSE), directory, end)
}
