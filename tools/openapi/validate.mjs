// Validates an OpenAPI document with @apidevtools/swagger-parser: the
// document against the OpenAPI 3.0 schema, then its references and
// operations (duplicate operation ids, path parameters declared).
//
//   node tools/openapi/validate.mjs openapi.json
//
// Prints "valid: <title> <version>, <n> paths" and exits 0, or prints why
// not and exits 1.
import SwaggerParser from "@apidevtools/swagger-parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs <openapi.json>");
  process.exit(2);
}
try {
  const api = await SwaggerParser.validate(file);
  console.log(`valid: ${api.info.title} ${api.info.version}, ${Object.keys(api.paths).length} paths`);
} catch (err) {
  console.error(`invalid: ${err.message}`);
  process.exit(1);
}
