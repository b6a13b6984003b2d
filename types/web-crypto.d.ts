// jose's API speaks of the Web Crypto `CryptoKey`, a DOM global that Node's types keep under
// `webcrypto`. Without the DOM lib, this alias lets code name it.
type CryptoKey = import('node:crypto').webcrypto.CryptoKey;
