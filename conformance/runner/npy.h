// A small .npy (NumPy array file) reader and writer: format versions 1.0-3.0, little-endian,
// C order. No dependencies beyond the standard library.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace conf {

struct NpyArray {
  std::string descr;           // e.g. "<f4", "<f2", "<u2", "|u1", "<i4"
  std::vector<int64_t> shape;  // C order
  std::vector<uint8_t> bytes;  // raw element data

  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Bytes per element of a descr ("<f4" -> 4), or 0 when not a fixed-size numeric type.
inline size_t npy_item_size(const std::string& descr) {
  if (descr.size() < 3) return 0;
  return static_cast<size_t>(std::strtoul(descr.c_str() + 2, nullptr, 10));
}

namespace detail {

inline std::string npy_dict_value(const std::string& header, const std::string& key) {
  std::string pat = "'" + key + "'";
  size_t k = header.find(pat);
  if (k == std::string::npos) throw std::runtime_error("npy: header lacks " + pat);
  size_t colon = header.find(':', k + pat.size());
  if (colon == std::string::npos) throw std::runtime_error("npy: bad header");
  size_t i = colon + 1;
  while (i < header.size() && header[i] == ' ') ++i;
  if (i >= header.size()) throw std::runtime_error("npy: bad header");
  char open = header[i];
  char close = open == '\'' ? '\'' : open == '(' ? ')' : 0;
  if (close) {
    size_t j = header.find(close, i + 1);
    if (j == std::string::npos) throw std::runtime_error("npy: bad header");
    return header.substr(i, j - i + 1);
  }
  size_t j = header.find_first_of(",}", i);
  return header.substr(i, j - i);
}

}  // namespace detail

inline NpyArray npy_read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (all.size() < 10 || std::memcmp(all.data(), "\x93NUMPY", 6) != 0)
    throw std::runtime_error(path + ": not a .npy file");
  uint8_t major = static_cast<uint8_t>(all[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(all[8]) | (static_cast<size_t>(static_cast<uint8_t>(all[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (all.size() < 12) throw std::runtime_error(path + ": truncated");
    header_len = 0;
    for (int i = 0; i < 4; ++i)
      header_len |= static_cast<size_t>(static_cast<uint8_t>(all[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw std::runtime_error(path + ": unsupported .npy version");
  }
  if (offset + header_len > all.size()) throw std::runtime_error(path + ": truncated header");
  std::string header = all.substr(offset, header_len);

  NpyArray a;
  std::string d = detail::npy_dict_value(header, "descr");
  a.descr = d.substr(1, d.size() - 2);
  if (detail::npy_dict_value(header, "fortran_order").find("True") != std::string::npos)
    throw std::runtime_error(path + ": Fortran order is not supported");
  if (a.descr.size() < 3 || (a.descr[0] != '<' && a.descr[0] != '|'))
    throw std::runtime_error(path + ": only little-endian data is supported (" + a.descr + ")");
  std::string shp = detail::npy_dict_value(header, "shape");  // "(2, 3)" or "(5,)" or "()"
  std::string inner = shp.substr(1, shp.size() - 2);
  std::stringstream ss(inner);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    size_t b = tok.find_first_not_of(" ");
    if (b == std::string::npos) continue;
    a.shape.push_back(std::stoll(tok.substr(b)));
  }
  size_t item = npy_item_size(a.descr);
  if (item == 0) throw std::runtime_error(path + ": unsupported dtype " + a.descr);
  size_t nbytes = static_cast<size_t>(a.count()) * item;
  size_t data_off = offset + header_len;
  if (all.size() - data_off != nbytes)
    throw std::runtime_error(path + ": data size " + std::to_string(all.size() - data_off) +
                             " does not match shape (" + std::to_string(nbytes) + ")");
  a.bytes.assign(all.begin() + static_cast<std::ptrdiff_t>(data_off), all.end());
  return a;
}

inline void npy_write(const std::string& path, const std::string& descr,
                      const std::vector<int64_t>& shape, const void* data, size_t nbytes) {
  std::string shp = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) shp += ", ";
    shp += std::to_string(shape[i]);
  }
  if (shape.size() == 1) shp += ",";
  shp += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shp + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot write " + path);
  f.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {static_cast<char>(header.size() & 0xFF), static_cast<char>(header.size() >> 8)};
  f.write(len, 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(nbytes));
}

}  // namespace conf
