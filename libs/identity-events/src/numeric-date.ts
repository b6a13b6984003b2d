/**
 * The latest instant (epoch ms) a JWT NumericDate can stand for. `iat: 134` means some time in second
 * 134, up to 134.999: a revocation "as of" the token must cover a session issued earlier in that same
 * second, so it takes the end of the second (the command's schema then caps it at `receivedAt`). A
 * fractional NumericDate is taken as it is.
 */
export const latestInstantOf = (numericDate: number): number =>
  Number.isInteger(numericDate) ? numericDate * 1000 + 999 : Math.floor(numericDate * 1000);
