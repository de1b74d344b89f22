/**
 * RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks. Each record comes with the line it
 * starts on, so a refused file names the line. A quote left open at the end of the file is an error (the mark
 * of a download cut short), never a silently shorter last row.
 */
export interface CsvRecord { line: number, cells: string[] }

export class CsvSyntaxError extends Error {
  constructor (readonly line: number, readonly column: number, message: string) { super(message) }
}

export function parseCsv (text: string): CsvRecord[] {
  const out: CsvRecord[] = []
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0 // byte-order mark
  let line = 1
  const n = text.length
  while (i < n) {
    const start = line
    const cells: string[] = []
    let cell = ''
    for (;;) {
      if (text[i] === '"') {
        const openLine = line
        i++
        for (;;) {
          if (i >= n) throw new CsvSyntaxError(openLine, cells.length + 1, 'quoted field is never closed (file cut short?)')
          const c = text[i] as string
          if (c === '"') {
            if (text[i + 1] === '"') { cell += '"'; i += 2; continue }
            i++
            break
          }
          if (c === '\n') line++
          cell += c
          i++
        }
        const next = text[i]
        if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
          throw new CsvSyntaxError(line, cells.length + 1, 'text after a closing quote')
        }
      } else {
        while (i < n) {
          const c = text[i] as string
          if (c === ',' || c === '\n' || c === '\r') break
          if (c === '"') throw new CsvSyntaxError(line, cells.length + 1, 'quote inside an unquoted field')
          cell += c
          i++
        }
      }
      cells.push(cell)
      cell = ''
      if (i >= n) break
      if (text[i] === ',') { i++; continue }
      if (text[i] === '\r') i++
      if (text[i] === '\n') i++
      line++
      break
    }
    // a blank line between records (or at the end) is not a record
    if (!(cells.length === 1 && cells[0] === '')) out.push({ line: start, cells })
  }
  return out
}
