// A small JSON reader, sufficient for conformance/manifest.json (RFC 8259 values; numbers are
// kept both as double and, when integral, as int64). No dependencies beyond the standard library.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace conf {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Json() = default;

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_object() const { return type_ == Type::Object; }
  bool is_array() const { return type_ == Type::Array; }

  bool as_bool() const {
    expect(Type::Bool, "bool");
    return bool_;
  }
  double as_double() const {
    expect(Type::Number, "number");
    return num_;
  }
  int64_t as_int() const {
    expect(Type::Number, "number");
    if (!is_int_) throw std::runtime_error("JSON: expected an integer");
    return int_;
  }
  const std::string& as_string() const {
    expect(Type::String, "string");
    return str_;
  }
  const std::vector<Json>& items() const {
    expect(Type::Array, "array");
    return arr_;
  }
  const std::vector<std::pair<std::string, Json>>& members() const {
    expect(Type::Object, "object");
    return obj_;
  }
  bool has(const std::string& key) const {
    if (type_ != Type::Object) return false;
    for (const auto& kv : obj_)
      if (kv.first == key) return true;
    return false;
  }
  // Member lookup; throws when missing.
  const Json& operator[](const std::string& key) const {
    expect(Type::Object, "object");
    for (const auto& kv : obj_)
      if (kv.first == key) return kv.second;
    throw std::runtime_error("JSON: missing key \"" + key + "\"");
  }
  const Json& operator[](size_t i) const { return items().at(i); }
  size_t size() const { return type_ == Type::Array ? arr_.size() : obj_.size(); }

  std::vector<int64_t> as_int_vector() const {
    std::vector<int64_t> out;
    for (const auto& x : items()) out.push_back(x.as_int());
    return out;
  }

  static Json parse(const std::string& text) {
    Parser p{text, 0};
    p.ws();
    Json v = p.value(0);
    p.ws();
    if (p.pos != text.size()) p.fail("trailing characters");
    return v;
  }

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  double num_ = 0;
  int64_t int_ = 0;
  bool is_int_ = false;
  std::string str_;
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;

  void expect(Type t, const char* what) const {
    if (type_ != t) throw std::runtime_error(std::string("JSON: expected ") + what);
  }

  struct Parser {
    const std::string& s;
    size_t pos;

    [[noreturn]] void fail(const std::string& why) const {
      throw std::runtime_error("JSON parse error at offset " + std::to_string(pos) + ": " + why);
    }
    void ws() {
      while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\r' || s[pos] == '\t'))
        ++pos;
    }
    bool lit(const char* w) {
      size_t n = std::char_traits<char>::length(w);
      if (s.compare(pos, n, w) == 0) {
        pos += n;
        return true;
      }
      return false;
    }
    Json value(int depth) {
      if (depth > 64) fail("nesting too deep");
      if (pos >= s.size()) fail("unexpected end");
      Json v;
      char c = s[pos];
      if (c == '{') {
        v.type_ = Type::Object;
        ++pos;
        ws();
        if (pos < s.size() && s[pos] == '}') {
          ++pos;
          return v;
        }
        for (;;) {
          ws();
          if (pos >= s.size() || s[pos] != '"') fail("expected a key");
          std::string key = string();
          ws();
          if (pos >= s.size() || s[pos] != ':') fail("expected ':'");
          ++pos;
          ws();
          v.obj_.emplace_back(std::move(key), value(depth + 1));
          ws();
          if (pos < s.size() && s[pos] == ',') {
            ++pos;
            continue;
          }
          if (pos < s.size() && s[pos] == '}') {
            ++pos;
            return v;
          }
          fail("expected ',' or '}'");
        }
      }
      if (c == '[') {
        v.type_ = Type::Array;
        ++pos;
        ws();
        if (pos < s.size() && s[pos] == ']') {
          ++pos;
          return v;
        }
        for (;;) {
          ws();
          v.arr_.push_back(value(depth + 1));
          ws();
          if (pos < s.size() && s[pos] == ',') {
            ++pos;
            continue;
          }
          if (pos < s.size() && s[pos] == ']') {
            ++pos;
            return v;
          }
          fail("expected ',' or ']'");
        }
      }
      if (c == '"') {
        v.type_ = Type::String;
        v.str_ = string();
        return v;
      }
      if (lit("null")) return v;
      if (lit("true")) {
        v.type_ = Type::Bool;
        v.bool_ = true;
        return v;
      }
      if (lit("false")) {
        v.type_ = Type::Bool;
        return v;
      }
      if (c == '-' || (c >= '0' && c <= '9')) {
        size_t start = pos;
        bool integral = true;
        if (s[pos] == '-') ++pos;
        while (pos < s.size()) {
          char d = s[pos];
          if (d >= '0' && d <= '9') {
            ++pos;
          } else if (d == '.' || d == 'e' || d == 'E' || d == '+' || d == '-') {
            integral = false;
            ++pos;
          } else {
            break;
          }
        }
        std::string tok = s.substr(start, pos - start);
        char* end = nullptr;
        v.type_ = Type::Number;
        v.num_ = std::strtod(tok.c_str(), &end);
        if (end == tok.c_str() || *end != '\0') fail("bad number '" + tok + "'");
        if (integral) {
          v.is_int_ = true;
          v.int_ = std::strtoll(tok.c_str(), nullptr, 10);
        } else if (v.num_ == static_cast<double>(static_cast<int64_t>(v.num_)) &&
                   v.num_ > -9.0e18 && v.num_ < 9.0e18) {
          v.is_int_ = true;
          v.int_ = static_cast<int64_t>(v.num_);
        }
        return v;
      }
      fail(std::string("unexpected character '") + c + "'");
    }
    static void utf8(std::string& out, uint32_t cp) {
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
    uint32_t hex4() {
      if (pos + 4 > s.size()) fail("short \\u escape");
      uint32_t cp = 0;
      for (int i = 0; i < 4; ++i) {
        char h = s[pos++];
        cp <<= 4;
        if (h >= '0' && h <= '9') cp |= static_cast<uint32_t>(h - '0');
        else if (h >= 'a' && h <= 'f') cp |= static_cast<uint32_t>(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') cp |= static_cast<uint32_t>(h - 'A' + 10);
        else fail("bad \\u escape");
      }
      return cp;
    }
    std::string string() {
      ++pos;  // opening quote
      std::string out;
      while (pos < s.size()) {
        char c = s[pos++];
        if (c == '"') return out;
        if (c != '\\') {
          out += c;
          continue;
        }
        if (pos >= s.size()) break;
        char e = s[pos++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            uint32_t cp = hex4();
            if (cp >= 0xD800 && cp < 0xDC00 && pos + 1 < s.size() && s[pos] == '\\' &&
                s[pos + 1] == 'u') {
              pos += 2;
              uint32_t lo = hex4();
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            utf8(out, cp);
            break;
          }
          default: fail("bad escape");
        }
      }
      fail("unterminated string");
    }
  };
};

}  // namespace conf
