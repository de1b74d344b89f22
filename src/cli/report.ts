/** `geogate report`. TODO: implemented by its issue. */
export async function run (_argv: string[]): Promise<number> {
  process.stderr.write('geogate report: not implemented yet\n')
  return 1
}
